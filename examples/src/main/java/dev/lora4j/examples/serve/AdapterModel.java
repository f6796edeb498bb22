package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A frozen base model (a {@code Sequential} of linear layers and activations, in eval mode)
 * with named LoRA adapters that requests pick per row.
 *
 * <p>Rows without a rank go through one {@link AdapterBank} per linear layer: every row gets
 * the update of its own adapter (or none, {@link AdapterBank#BASE}) in one fused native call.
 * Rows with a DyLoRA rank get {@code s_b·(x·A[:b]ᵀ)·B[:, :b]ᵀ} of their adapter.
 *
 * <p>Threads: {@link #forward} runs from many threads at once (the base model in eval mode
 * and the banks are read-only then); {@link #add}, {@link #remove} and {@link #close} change
 * the banks and wait until no forward runs (a read-write lock), as lora4j's thread rules ask.
 * The owner of this object owns the base model and every adapter; {@link #close} frees them.
 */
final class AdapterModel implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Sequential base;
    private final long inFeatures;
    private final long outFeatures;
    private final Map<Integer, AdapterBank> banks = new LinkedHashMap<>();
    private final Map<String, NamedAdapter> adapters = new LinkedHashMap<>();
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private boolean closed;

    /** Takes ownership of {@code base}: a {@code Sequential} whose first and last children are {@link Linear}. */
    AdapterModel(Sequential base) {
        this.base = base;
        if (base.size() == 0 || !(base.get(0) instanceof Linear first) || !(base.get(base.size() - 1) instanceof Linear last)) {
            throw new IllegalArgumentException("the served model must be a Sequential that starts and ends with a Linear layer");
        }
        inFeatures = first.inFeatures();
        outFeatures = last.outFeatures();
        for (int i = 0; i < base.size(); i++) {
            if (base.get(i) instanceof Linear l) banks.put(i, new AdapterBank(l.inFeatures(), l.outFeatures()));
        }
        base.eval();
        base.requiresGrad_(false);
    }

    long inFeatures() {
        return inFeatures;
    }

    long outFeatures() {
        return outFeatures;
    }

    long parameterCount() {
        return base.parameterCount();
    }

    // ------------------------------------------------------------------ adapters

    /** The loaded adapters, in load order (a snapshot). */
    List<NamedAdapter> adapters() {
        lock.readLock().lock();
        try {
            return List.copyOf(adapters.values());
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Reads the PEFT adapter folder {@code dir} (outside the lock: forwards go on meanwhile).
     * The folder is checked against the model by {@link PeftAdapter#load} on a same-shaped
     * skeleton; the served model is not touched.
     *
     * @throws ApiError 422 when the folder is not an adapter for this model
     */
    NamedAdapter read(String name, Path dir) {
        boolean dylora;
        try {
            JsonNode cfg = JSON.readTree(dir.resolve(PeftAdapter.CONFIG).toFile());
            dylora = cfg != null && cfg.path(DyLoraFolders.MARKER).asBoolean(false);
        } catch (IOException e) {
            throw ApiError.unprocessable("adapter folder '" + dir.getFileName() + "': " + e.getMessage());
        }
        Map<Integer, NamedAdapter.Factors> layers = new LinkedHashMap<>();
        try (Sequential skeleton = skeleton(); var ng = Torch.noGrad()) {
            PeftAdapter.LoadReport report = PeftAdapter.load(skeleton, dir);
            if (report.config().fanInFanOut()) throw new IOException("fan_in_fan_out adapters do not fit Linear layers");
            for (Map.Entry<String, LoraLayer> e : Lora.loraLayers(skeleton).entrySet()) {
                if (!(e.getValue() instanceof LoraLinear l)) throw new IOException(e.getKey() + " is not a linear layer");
                layers.put(Integer.parseInt(e.getKey()), new NamedAdapter.Factors(l.loraA().detach().clone(),
                        l.loraB().detach().clone(), l.config().loraAlpha(), l.config().useRslora()));
            }
            List<String> reported = new ArrayList<>(report.unknownFields());
            reported.remove(DyLoraFolders.MARKER);
            reported.addAll(report.ignoredFields());
            if (layers.isEmpty()) throw new IOException("the adapter covers no layer");
            return new NamedAdapter(name, dir, dylora, Map.copyOf(layers), List.copyOf(reported));
        } catch (IOException | RuntimeException e) {
            layers.values().forEach(f -> {
                f.a().close();
                f.b().close();
            });
            if (e instanceof ApiError a) throw a;
            throw ApiError.unprocessable("adapter folder '" + dir.getFileName() + "' does not fit the model: " + e.getMessage());
        }
    }

    /** A model of the base's shape, for the PEFT loader to check and fill (its own weights are never used). */
    private Sequential skeleton() {
        Sequential s = new Sequential();
        for (int i = 0; i < base.size(); i++) {
            s.add(base.get(i) instanceof Linear l ? new Linear(l.inFeatures(), l.outFeatures(), l.bias() != null) : Activation.relu());
        }
        return s;
    }

    /**
     * Adds {@code adapter} under its name; the model owns it from now on.
     *
     * @throws ApiError 409 when the name is taken or {@code limit} adapters are loaded
     */
    void add(NamedAdapter adapter, int limit) {
        lock.writeLock().lock();
        try {
            ensureOpen();
            if (adapters.containsKey(adapter.name())) throw ApiError.conflict("adapter '" + adapter.name() + "' is already loaded: delete it first");
            if (adapters.size() >= limit) throw ApiError.conflict("the service holds its limit of " + limit + " adapters: delete one first");
            adapter.layers().forEach((i, f) -> banks.get(i).put(adapter.name(), f.a(), f.b(), f.scaleAt(f.r())));
            adapters.put(adapter.name(), adapter);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Removes and frees adapter {@code name}; false when there is none. */
    boolean remove(String name) {
        lock.writeLock().lock();
        try {
            ensureOpen();
            NamedAdapter a = adapters.remove(name);
            if (a == null) return false;
            a.layers().keySet().forEach(i -> banks.get(i).remove(name));
            a.close();
            return true;
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ------------------------------------------------------------------ inference

    /**
     * The logits (rows × outFeatures, row-major) for {@code pixels} (rows × inFeatures), each
     * row with adapter {@code names[row]} ({@link AdapterBank#BASE} for none) at {@code rank}
     * (null: every adapter's full rank).
     *
     * @throws ApiError 404 for an adapter that is not loaded, 422 for a rank an adapter cannot serve
     */
    float[] forward(float[] pixels, int rows, String[] names, Integer rank) {
        lock.readLock().lock();
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            ensureOpen();
            Set<String> used = new LinkedHashSet<>(Arrays.asList(names));
            used.remove(AdapterBank.BASE);
            for (String n : used) {
                NamedAdapter a = adapters.get(n);
                if (a == null) throw ApiError.notFound("no adapter named '" + AdapterFolders.clip(n) + "' is loaded (have " + adapters.keySet() + ")");
                if (rank != null && !a.dylora()) {
                    throw ApiError.unprocessable("adapter '" + n + "' is a LoRA adapter of rank " + a.maxRank()
                            + ": a rank can only be asked of a DyLoRA adapter");
                }
                if (rank != null && rank > a.maxRank()) {
                    throw ApiError.unprocessable("rank must be in 1.." + a.maxRank() + " for adapter '" + n + "', got " + rank);
                }
            }
            Tensor h = Tensor.of(pixels, rows, inFeatures);
            for (int i = 0; i < base.size(); i++) {
                Module m = base.get(i);
                Tensor y = m.forward(h);
                if (m instanceof Linear && !used.isEmpty()) {
                    Tensor d = rank == null ? bankDelta(i, h, names) : rankDelta(i, h, names, used, rank);
                    if (d != null) y = y.add(d);
                }
                h = y;
            }
            return h.toFloatArray();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Every row's update through layer i's bank (rows whose adapter skips the layer get none). */
    private Tensor bankDelta(int layer, Tensor h, String[] names) {
        String[] perRow = new String[names.length];
        boolean any = false;
        for (int r = 0; r < names.length; r++) {
            NamedAdapter a = adapters.get(names[r]);
            boolean covers = a != null && a.layers().containsKey(layer);
            perRow[r] = covers ? names[r] : AdapterBank.BASE;
            any |= covers;
        }
        return any ? banks.get(layer).delta(h, perRow) : null;
    }

    /** Every row's update at rank b: one product per adapter, masked to its rows. */
    private Tensor rankDelta(int layer, Tensor h, String[] names, Set<String> used, int b) {
        Tensor sum = null;
        for (String n : used) {
            NamedAdapter.Factors f = adapters.get(n).layers().get(layer);
            if (f == null) continue;
            Tensor down = Functional.linear(h, f.a().narrow(0, 0, b), null);
            Tensor d = Functional.linear(down, f.b().narrow(1, 0, b), null).mul(f.scaleAt(b));
            if (used.size() > 1 || Arrays.asList(names).contains(AdapterBank.BASE)) d = d.mul(rowMask(names, n));
            sum = sum == null ? d : sum.add(d);
        }
        return sum;
    }

    private static Tensor rowMask(String[] names, String name) {
        float[] m = new float[names.length];
        for (int r = 0; r < m.length; r++) m[r] = names[r].equals(name) ? 1f : 0f;
        return Tensor.of(m, m.length, 1);
    }

    // ------------------------------------------------------------------ lifecycle

    private void ensureOpen() {
        if (closed) throw new ApiError(503, "the service is shutting down");
    }

    boolean isClosed() {
        lock.readLock().lock();
        try {
            return closed;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Waits for running forwards, then frees the adapters, the banks and the base model. Idempotent. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (closed) return;
            closed = true;
            adapters.values().forEach(NamedAdapter::close);
            adapters.clear();
            banks.values().forEach(AdapterBank::close);
            base.close();
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** For the health endpoint: how many adapters are loaded. */
    int adapterCount() {
        lock.readLock().lock();
        try {
            return adapters.size();
        } finally {
            lock.readLock().unlock();
        }
    }
}
