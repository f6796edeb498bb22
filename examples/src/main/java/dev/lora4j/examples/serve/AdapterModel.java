package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraLinear;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.AdapterLock;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The served model: a frozen base ({@code Sequential} of linear layers and activations, eval
 * mode) with named adapters that requests pick per row.
 *
 * <p>LoRA adapters are lora4j named adapters of the model itself ({@link PeftAdapter#loadShared},
 * {@link Lora#deleteAdapter}): every adapter shares the base, so a folder that would change it
 * ({@code modules_to_save}, a PiSSA or OLoRA init) is refused; a batch is served by {@link Lora#forward(Module,
 * Tensor, String...)}, every row with its own adapter or {@link AdapterBank#BASE}, the linear
 * layers in one fused native call. DyLoRA adapters each have a model of their own sharing the
 * base weights and are served by {@link DyLora#forward(Module, Tensor, int)} at the requested
 * rank. A batch that mixes them is split by kind and put back together in row order.
 *
 * <p>Threads: {@link #forward} runs from many threads at once while {@link #add},
 * {@link #remove} and {@link #close} change the models: the service relies on lora4j's own
 * discipline ({@link AdapterLock}: a change waits for running forwards of its model and every
 * forward sees one state), not on a lock of its own. The service's list of adapters is an
 * immutable map replaced on every change (forwards read one version of it); the changes are
 * serialized among themselves by this object's monitor, which forwards never take. A request
 * whose adapter is deleted while it runs gets 404. This object owns the base model and every
 * adapter; {@link #close} frees them.
 */
final class AdapterModel implements AutoCloseable {

    private final Sequential model;
    private final long inFeatures;
    private final long outFeatures;
    private final long baseParameters;
    /** The loaded adapters in load order; replaced, never changed, so forwards read one version. */
    private volatile Map<String, NamedAdapter> adapters = Map.of();
    private volatile boolean closed;

    /** Takes ownership of {@code base}: a {@code Sequential} whose first and last children are {@link Linear}. */
    AdapterModel(Sequential base) {
        this.model = base;
        if (base.size() == 0 || !(base.get(0) instanceof Linear first) || !(base.get(base.size() - 1) instanceof Linear last)) {
            throw new IllegalArgumentException("the served model must be a Sequential that starts and ends with a Linear layer");
        }
        inFeatures = first.inFeatures();
        outFeatures = last.outFeatures();
        baseParameters = base.parameterCount();
        base.requiresGrad_(false);
        base.eval();
    }

    long inFeatures() {
        return inFeatures;
    }

    long outFeatures() {
        return outFeatures;
    }

    long parameterCount() {
        return baseParameters;
    }

    // ------------------------------------------------------------------ adapters

    /** The loaded adapters, in load order (a snapshot). */
    List<NamedAdapter> adapters() {
        return List.copyOf(adapters.values());
    }

    /** For the health endpoint: how many adapters are loaded. */
    int adapterCount() {
        return adapters.size();
    }

    /**
     * Loads the folder {@code relative} (under the adapters root) as {@code name}, from a private
     * copy of its files made without following links ({@link AdapterFolders#snapshot}).
     *
     * @throws ApiError as {@link AdapterFolders#resolve}, {@link AdapterFolders#snapshot} and
     *     {@link #add(String, Path, Path, int)}
     */
    NamedAdapter add(String name, AdapterFolders folders, String relative, int limit) {
        Path folder = folders.resolve(relative);
        Path copy = folders.snapshot(folder);
        try {
            return add(name, folder, copy, limit);
        } finally {
            AdapterFolders.deleteSnapshot(copy);
        }
    }

    /**
     * Loads the adapter files {@code copy} holds (a private copy of the folder {@code folder},
     * see {@link AdapterFolders#snapshot}) as {@code name}: a LoRA adapter into the served model,
     * a DyLoRA adapter into a model of its own. Nothing changes when the folder is wrong.
     *
     * @throws ApiError 409 when the name is taken or {@code limit} adapters are loaded, 422 when
     *     the folder is not an adapter for this model
     */
    synchronized NamedAdapter add(String name, Path folder, Path copy, int limit) {
        ensureOpen();
        if (adapters.containsKey(name)) throw ApiError.conflict("adapter '" + name + "' is already loaded: delete it first");
        if (adapters.size() >= limit) throw ApiError.conflict("the service holds its limit of " + limit + " adapters: delete one first");
        String shown = folder.getFileName() == null ? "." : AdapterFolders.clip(folder.getFileName().toString());
        JsonNode cfg = config(copy, shown);
        refuseWholeModules(cfg, shown);
        NamedAdapter a = cfg.path(DyLoraFolders.MARKER).asBoolean(false) ? loadDyLora(name, folder, copy, shown) : loadLora(name, folder, copy, shown);
        Map<String, NamedAdapter> next = new LinkedHashMap<>(adapters);
        next.put(name, a);
        adapters = java.util.Collections.unmodifiableMap(next);
        return a;
    }

    /** The folder's config; one that is not a JSON object is refused without quoting it. */
    private static JsonNode config(Path copy, String shown) {
        JsonNode cfg;
        try {
            cfg = Exchanges.JSON.readTree(copy.resolve(PeftAdapter.CONFIG).toFile());
        } catch (IOException e) {
            cfg = null;
        }
        if (cfg == null || !cfg.isObject()) throw ApiError.unprocessable("adapter folder '" + shown + "': " + PeftAdapter.CONFIG + " is not a JSON object");
        return cfg;
    }

    /**
     * Every adapter shares the served base, so PEFT's {@code modules_to_save} (layers replaced
     * whole) cannot be served: refused before anything loads. (The other base-changing settings,
     * PiSSA and OLoRA inits, are refused by {@link PeftAdapter#loadShared}.)
     */
    private static void refuseWholeModules(JsonNode cfg, String shown) {
        JsonNode m = cfg.get("modules_to_save");
        if (m != null && !m.isNull() && !(m.isArray() && m.isEmpty())) {
            throw ApiError.unprocessable("adapter folder '" + shown + "': modules_to_save " + AdapterFolders.clip(m.toString())
                    + " would replace layers of the base that every adapter of this service shares: only LoRA factors are served");
        }
    }

    /** Loads into a model whose base other adapters share: factors only, refused whole when anything would change the base. */
    private static PeftAdapter.LoadReport loadShared(Module into, Path copy, String name, String shown) throws IOException {
        try (PeftAdapter.SharedLoad r = PeftAdapter.loadShared(into, copy, name, 0)) {
            if (!r.modulesToSave().isEmpty()) { // refused above; kept so that no path writes them into the base
                Lora.deleteAdapter(into, name);
                throw new IOException("modules_to_save tensors " + r.modulesToSave().keySet() + " cannot be served");
            }
            return r.report();
        }
    }

    /** The library's reason, with the private copy's path replaced by the folder's name. */
    private static String reason(Exception e, Path copy, String shown) {
        String m = String.valueOf(e.getMessage()).replace(copy.toString(), shown);
        return m.length() <= 300 ? m : m.substring(0, 297) + "...";
    }

    private NamedAdapter loadLora(String name, Path folder, Path copy, String shown) {
        PeftAdapter.LoadReport report;
        try {
            // One change: forwards see the model before the load or after it, its new layers already in eval mode.
            report = AdapterLock.changing(model, () -> {
                PeftAdapter.LoadReport r = loadShared(model, copy, name, shown);
                model.eval(); // new LoRA layers start in training mode (dropout)
                return r;
            });
        } catch (IOException | IllegalArgumentException e) {
            throw ApiError.unprocessable("adapter folder '" + shown + "' does not fit the model: " + reason(e, copy, shown));
        }
        List<String> layers = new ArrayList<>();
        int rank = Integer.MAX_VALUE;
        for (var e : Lora.loraLayers(model).entrySet()) {
            if (e.getValue().hasAdapter(name)) {
                layers.add(e.getKey());
                rank = Math.min(rank, e.getValue().config(name).r());
            }
        }
        return new NamedAdapter(name, folder, rank, List.copyOf(layers), reported(report), null);
    }

    /** A model sharing the base weights, the folder loaded into it, its LoRA layers turned into DyLoRA layers. */
    private NamedAdapter loadDyLora(String name, Path folder, Path copy, String shown) {
        Sequential own = new Sequential();
        try {
            for (int i = 0; i < model.size(); i++) {
                Module m = model.get(i);
                Module base = m instanceof LoraLayer l ? l.baseLayer() : m;
                own.add(base instanceof Linear lin ? new SharedLinear(lin) : activationLike(base));
            }
            PeftAdapter.LoadReport report = loadShared(own, copy, LoraLayer.DEFAULT_ADAPTER, shown); // own's SharedLinears alias the base
            List<String> layers = new ArrayList<>();
            int rank = Integer.MAX_VALUE;
            try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
                for (var e : Lora.loraLayers(own).entrySet()) {
                    if (!(e.getValue() instanceof LoraLinear l)) throw new IOException(e.getKey() + " is not a linear layer");
                    Tensor a = l.loraA().clone();
                    Tensor b = l.loraB().clone();
                    var config = l.config();
                    DyLoraLinear d = new DyLoraLinear(l.unload(), config);
                    d.loraA().copy_(a);
                    d.loraB().copy_(b);
                    own.replaceChild(e.getKey(), d);
                    layers.add(e.getKey());
                    rank = Math.min(rank, d.rMax());
                }
            }
            own.requiresGrad_(false);
            own.eval();
            return new NamedAdapter(name, folder, rank, List.copyOf(layers), reported(report), own);
        } catch (IOException | RuntimeException e) {
            own.close();
            throw ApiError.unprocessable("DyLoRA adapter folder '" + shown + "' does not fit the model: " + reason(e, copy, shown));
        }
    }

    /** The non-linear children of the served model are stateless activations; a DyLoRA model reuses them. */
    private static Module activationLike(Module m) {
        if (m instanceof dev.lora4j.nn.Activation a) {
            return switch (a.name().toLowerCase(java.util.Locale.ROOT)) {
                case "relu" -> dev.lora4j.nn.Activation.relu();
                case "gelu" -> dev.lora4j.nn.Activation.gelu();
                case "tanh" -> dev.lora4j.nn.Activation.tanh();
                case "sigmoid" -> dev.lora4j.nn.Activation.sigmoid();
                default -> throw new IllegalArgumentException("activation " + a.name() + " is not supported by the service");
            };
        }
        throw new IllegalArgumentException(m.getClass().getSimpleName() + " layers are not supported by the service");
    }

    private static List<String> reported(PeftAdapter.LoadReport report) {
        List<String> out = new ArrayList<>(report.unknownFields());
        out.remove(DyLoraFolders.MARKER);
        out.addAll(report.ignoredFields());
        return List.copyOf(out);
    }

    /** Removes and frees adapter {@code name}; false when there is none. */
    synchronized boolean remove(String name) {
        ensureOpen();
        NamedAdapter a = adapters.get(name);
        if (a == null) return false;
        Map<String, NamedAdapter> next = new LinkedHashMap<>(adapters);
        next.remove(name);
        adapters = java.util.Collections.unmodifiableMap(next);
        if (a.isDyLora()) closeDyLora(a);
        else Lora.deleteAdapter(model, name); // waits for running forwards (the library's discipline)
        return true;
    }

    /** Closes a DyLoRA adapter's model once no forward of it runs; later forwards find it closed. */
    private static void closeDyLora(NamedAdapter a) {
        AdapterLock.changing(a.dylora(), () -> {
            a.close();
            return null;
        });
    }

    // ------------------------------------------------------------------ inference

    /**
     * The logits (rows × outFeatures, row-major) for {@code pixels} (rows × inFeatures), each
     * row with adapter {@code names[row]} ({@link AdapterBank#BASE} for none); DyLoRA adapters at
     * {@code rank} (null: their r_max).
     *
     * @throws ApiError 404 for an adapter that is not loaded, 422 for a rank an adapter cannot serve
     */
    float[] forward(float[] pixels, int rows, String[] names, Integer rank) {
        ensureOpen();
        Map<String, NamedAdapter> adapters = this.adapters; // one version for the whole request
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            // Rows served by the model itself (LoRA adapters, base) and by each DyLoRA adapter.
            Map<String, List<Integer>> groups = new LinkedHashMap<>();
            for (int r = 0; r < rows; r++) {
                String n = names[r];
                NamedAdapter a = n.equals(AdapterBank.BASE) ? null : adapters.get(n);
                if (!n.equals(AdapterBank.BASE) && a == null) {
                    throw ApiError.notFound("no adapter named '" + AdapterFolders.clip(n) + "' is loaded (have " + adapters.keySet()
                            + ", or '" + AdapterBank.BASE + "' for none)");
                }
                if (a != null && rank != null) {
                    if (!a.isDyLora()) {
                        throw ApiError.unprocessable("adapter '" + n + "' is a LoRA adapter of rank " + a.rank()
                                + ": a rank can only be asked of a DyLoRA adapter");
                    }
                    if (rank > a.rank()) throw ApiError.unprocessable("rank must be in 1.." + a.rank() + " for adapter '" + n + "', got " + rank);
                }
                groups.computeIfAbsent(a != null && a.isDyLora() ? n : "", k -> new ArrayList<>()).add(r);
            }
            Tensor x = Tensor.of(pixels, rows, inFeatures);
            if (groups.size() == 1) return run(adapters, groups.keySet().iterator().next(), x, names, rank).toFloatArray();
            float[] out = new float[(int) (rows * outFeatures)];
            for (var g : groups.entrySet()) {
                long[] idx = g.getValue().stream().mapToLong(Integer::longValue).toArray();
                String[] sub = g.getValue().stream().map(r -> names[r]).toArray(String[]::new);
                float[] y = run(adapters, g.getKey(), x.indexSelect(0, Tensor.of(idx, idx.length)), sub, rank).toFloatArray();
                for (int i = 0; i < idx.length; i++) {
                    System.arraycopy(y, (int) (i * outFeatures), out, (int) (idx[i] * outFeatures), (int) outFeatures);
                }
            }
            return out;
        } catch (IllegalArgumentException | IllegalStateException e) {
            ensureOpen();
            // The library refuses a name that is gone: an adapter deleted (or deleted and loaded
            // again, maybe as the other kind) while this request ran.
            Map<String, NamedAdapter> now = this.adapters;
            for (String n : names) {
                if (!n.equals(AdapterBank.BASE) && now.get(n) != adapters.get(n)) {
                    throw ApiError.notFound("adapter '" + n + "' was deleted or replaced while the request ran");
                }
            }
            throw e;
        }
    }

    /** Group "" is the served model (LoRA adapters or base per row); any other is a DyLoRA adapter's model. */
    private Tensor run(Map<String, NamedAdapter> adapters, String group, Tensor x, String[] names, Integer rank) {
        if (group.isEmpty()) return Lora.forward(model, x, names);
        NamedAdapter a = adapters.get(group);
        return AdapterLock.reading(a.dylora(), () -> {
            if (a.dylora().isClosed()) throw ApiError.notFound("adapter '" + group + "' was deleted while the request ran");
            return DyLora.forward(a.dylora(), x, rank != null ? rank : a.rank());
        });
    }

    // ------------------------------------------------------------------ lifecycle

    private void ensureOpen() {
        if (closed) throw new ApiError(503, "the service is shutting down");
    }

    boolean isClosed() {
        return closed;
    }

    /** Waits for running forwards (each model's adapter lock), then frees the adapters and the model. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        Map<String, NamedAdapter> all = adapters;
        adapters = Map.of();
        all.values().stream().filter(NamedAdapter::isDyLora).forEach(AdapterModel::closeDyLora);
        AdapterLock.changing(model, () -> {
            model.close();
            return null;
        });
    }
}
