package dev.lora4j.lora;

import static dev.lora4j.bindings.LibLora4j.lt_lora_mixed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The LoRA updates of many named adapters of one linear layer, stacked for mixed-batch
 * serving: each row of a batch picks its own adapter (or {@link #BASE} for none) and gets
 * {@code Δy = s·B·(A·x)} of that adapter, all rows in one native call (the shim's fused
 * {@code lt_lora_mixed} kernel: per-row products over adapters stacked and zero-padded to the
 * largest rank, parallel over rows) rather than a loop over adapters. Float64 adapters use
 * two dense products instead: {@code ((x · A_catᵀ) ⊙ M[row adapter]) · B_catᵀ}, where row k of
 * M is adapter k's scale on its own rank columns. Ranks may differ between adapters. Inference
 * only: the result records no gradients.
 *
 * <p>Owns copies of the factors it was given; {@link #close()} frees them. Thread-safe:
 * {@link #delta} runs on many threads at once; {@link #put}, {@link #remove} and
 * {@link #close} wait for running deltas (a read-write lock) and the deltas after them see
 * the change whole. A delta after close is an {@link IllegalStateException}.
 */
public final class AdapterBank implements AutoCloseable {

    /** The name that selects no adapter: the row gets the base layer's output only. */
    public static final String BASE = "__base__";

    private record Entry(Tensor a, Tensor b, double scale) {}

    private final long inFeatures;
    private final long outFeatures;
    private final Map<String, Entry> adapters = new LinkedHashMap<>();
    private Map<String, Integer> slots = Map.of(BASE, 0);
    private Tensor aCat;
    private Tensor bCat;
    private Tensor masks;
    private Tensor aStack;
    private Tensor bStack;
    private Tensor scaleVec;
    private boolean closed;
    private final java.util.concurrent.locks.ReentrantReadWriteLock lock = new java.util.concurrent.locks.ReentrantReadWriteLock();

    /** An empty bank for a layer of {@code inFeatures} → {@code outFeatures}. */
    public AdapterBank(long inFeatures, long outFeatures) {
        if (inFeatures < 1 || outFeatures < 1) throw new IllegalArgumentException("features must be >= 1");
        this.inFeatures = inFeatures;
        this.outFeatures = outFeatures;
    }

    /** A bank holding the adapter of {@code layer} under {@code name}. */
    public static AdapterBank of(String name, LoraLinear layer) {
        AdapterBank bank = new AdapterBank(layer.inFeatures(), layer.outFeatures());
        bank.put(name, layer);
        return bank;
    }

    /** Adds (or replaces) adapter {@code name} with the factors and scale of {@code layer}. */
    public void put(String name, LoraLinear layer) {
        Objects.requireNonNull(layer, "layer");
        if (layer.config().fanInFanOut()) throw new IllegalArgumentException("fan_in_fan_out adapters are not supported here");
        if (layer.config().useDora()) throw new IllegalArgumentException("DoRA adapters are not supported here (LoraLinear serves them exactly)");
        put(name, layer.loraA(), layer.loraB(), layer.scaling());
    }

    /** Adds (or replaces) adapter {@code name}: A (r, in), B (out, r), scale s. The bank keeps copies. */
    public void put(String name, Tensor a, Tensor b, double scale) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        if (name.equals(BASE)) throw new IllegalArgumentException("'" + BASE + "' is reserved for rows without an adapter");
        if (a.dim() != 2 || b.dim() != 2 || a.size(1) != inFeatures || b.size(0) != outFeatures || a.size(0) != b.size(1)) {
            throw new IllegalArgumentException("adapter '" + name + "' needs A (r, " + inFeatures + ") and B (" + outFeatures
                    + ", r), got " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
        if (!Double.isFinite(scale)) throw new IllegalArgumentException("scale must be finite, got " + scale);
        lock.writeLock().lock();
        try {
            ensureOpen();
            putLocked(name, a, b, scale);
        } finally {
            lock.writeLock().unlock();
        }
    }

    private void putLocked(String name, Tensor a, Tensor b, double scale) {
        Entry copy;
        try (var ng = Torch.noGrad()) {
            Tensor ac = a.detach().clone();
            Tensor bc = b.detach().clone();
            Calls.own(ac);
            Calls.own(bc);
            copy = new Entry(ac, bc, scale);
        }
        Entry old = adapters.put(name, copy);
        if (old != null) {
            old.a().close();
            old.b().close();
        }
        rebuild();
    }

    /** Removes adapter {@code name}; returns whether it was there. */
    public boolean remove(String name) {
        lock.writeLock().lock();
        try {
            Entry old = adapters.remove(name);
            if (old == null) return false;
            old.a().close();
            old.b().close();
            rebuild();
            return true;
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** The adapter names, in the order they were added. */
    public List<String> names() {
        lock.readLock().lock();
        try {
            return List.copyOf(adapters.keySet());
        } finally {
            lock.readLock().unlock();
        }
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("this AdapterBank is closed");
    }

    private void rebuild() {
        closeStacks();
        if (adapters.isEmpty()) {
            slots = Map.of(BASE, 0);
            return;
        }
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            List<Tensor> as = new ArrayList<>();
            List<Tensor> bs = new ArrayList<>();
            int total = 0;
            for (Entry e : adapters.values()) {
                as.add(e.a());
                bs.add(e.b());
                total += (int) e.a().size(0);
            }
            float[] m = new float[(adapters.size() + 1) * total];
            Map<String, Integer> newSlots = new LinkedHashMap<>();
            newSlots.put(BASE, 0);
            int slot = 1;
            int col = 0;
            for (var e : adapters.entrySet()) {
                int r = (int) e.getValue().a().size(0);
                Arrays.fill(m, slot * total + col, slot * total + col + r, (float) e.getValue().scale());
                newSlots.put(e.getKey(), slot++);
                col += r;
            }
            aCat = Tensor.cat(as, 0).to(as.get(0).dtype()).keep();
            bCat = Tensor.cat(bs, 1).keep();
            masks = Tensor.of(m, adapters.size() + 1, total).to(aCat.dtype()).keep();
            // The fused kernel's layout: A (n, R, in) and Bᵀ (n, R, out), zero-padded to the largest rank.
            long maxRank = as.stream().mapToLong(t -> t.size(0)).max().orElse(1);
            List<Tensor> pa = new ArrayList<>();
            List<Tensor> pb = new ArrayList<>();
            float[] sc = new float[adapters.size()];
            int i = 0;
            for (Entry e : adapters.values()) {
                long r = e.a().size(0);
                Tensor a32 = e.a().to(dev.lora4j.DType.FLOAT32);
                Tensor b32 = e.b().to(dev.lora4j.DType.FLOAT32);
                pa.add(r == maxRank ? a32 : Tensor.cat(List.of(a32, Tensor.zeros(maxRank - r, inFeatures)), 0));
                Tensor padded = r == maxRank ? b32 : Tensor.cat(List.of(b32, Tensor.zeros(outFeatures, maxRank - r)), 1);
                pb.add(padded.t().contiguous());
                sc[i++] = (float) e.scale();
            }
            aStack = Tensor.stack(pa, 0).keep();
            bStack = Tensor.stack(pb, 0).keep();
            scaleVec = Tensor.of(sc, sc.length).keep();
            for (Tensor t : new Tensor[] {aCat, bCat, masks, aStack, bStack, scaleVec}) Calls.own(t);
            slots = Map.copyOf(newSlots);
        }
    }

    /** The row indices into the mask table for {@code names} (one per row). */
    private long[] slotsOf(String[] names) {
        Map<String, Integer> s = slots;
        long[] idx = new long[names.length];
        for (int i = 0; i < names.length; i++) {
            Integer k = s.get(Objects.requireNonNull(names[i], "names[" + i + "]"));
            if (k == null) throw new IllegalArgumentException("no adapter named '" + names[i] + "' (have " + adapters.keySet() + ")");
            idx[i] = k;
        }
        return idx;
    }

    /**
     * The LoRA update of every row of {@code x} (N, in) with that row's adapter: (N, out).
     * Rows named {@link #BASE} get zeros. The result belongs to the caller.
     */
    public Tensor delta(Tensor x, String... names) {
        Objects.requireNonNull(x, "x");
        if (x.dim() != 2 || x.size(1) != inFeatures) {
            throw new IllegalArgumentException("x must be (N, " + inFeatures + "), got " + Arrays.toString(x.shape()));
        }
        if (names.length != x.size(0)) {
            throw new IllegalArgumentException(names.length + " adapter names for " + x.size(0) + " rows");
        }
        lock.readLock().lock();
        try {
            ensureOpen();
            return deltaLocked(x, names);
        } finally {
            lock.readLock().unlock();
        }
    }

    private Tensor deltaLocked(Tensor x, String[] names) {
        long[] idx = slotsOf(names);
        if (aCat == null) return Tensor.zeros(x.dtype(), x.size(0), outFeatures);
        if (x.dtype() == dev.lora4j.DType.FLOAT32 && aCat.dtype() == dev.lora4j.DType.FLOAT32) return fused(x, idx);
        try (TensorScope s = TensorScope.open()) {
            Tensor rowMasks = masks.indexSelect(0, Tensor.of(idx, idx.length));
            Tensor down = dev.lora4j.nn.Functional.linear(x, aCat, null).mul(rowMasks);
            return dev.lora4j.nn.Functional.linear(down, bCat, null).keep();
        }
    }

    /** The fused kernel; slot k in the mask table is adapter k-1 in the stacks, slot 0 none. */
    private Tensor fused(Tensor x, long[] slotIdx) {
        long[] adapter = new long[slotIdx.length];
        for (int i = 0; i < adapter.length; i++) adapter[i] = slotIdx[i] - 1;
        PerThread t = PerThread.get();
        Tensor[] operands = {x, aStack, bStack, scaleVec};
        var h = Calls.pinAll(operands, new String[] {"x", "aStack", "bStack", "scale"});
        try {
            Status.check(lt_lora_mixed(h[0], h[1], h[2], h[3], t.longs(1, adapter), adapter.length, t.out0), "AdapterBank.delta");
        } finally {
            Calls.unpinAll(operands);
            Reference.reachabilityFence(this);
        }
        return Calls.adopt(t, PerThread.address(t.out0));
    }

    private void closeStacks() {
        for (Tensor t : new Tensor[] {aCat, bCat, masks, aStack, bStack, scaleVec}) if (t != null) t.close();
        aCat = bCat = masks = aStack = bStack = scaleVec = null;
    }

    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            closed = true;
            closeStacks();
            adapters.values().forEach(e -> {
                e.a().close();
                e.b().close();
            });
            adapters.clear();
        } finally {
            lock.writeLock().unlock();
        }
    }
}
