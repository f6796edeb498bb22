package dev.lora4j.lora;

import static dev.lora4j.bindings.LibLora4j.lt_lora_mixed;

import dev.lora4j.DType;
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
 * serving: each batch row picks its own adapter (or {@link #BASE} for none) and gets
 * {@code Δy = s·B·(A·x)} of that adapter, all rows in one native call (the shim's fused
 * {@code lt_lora_mixed} kernel over adapters stacked and zero-padded to the largest rank: rows
 * grouped by adapter wherever they are in the batch, so each adapter's factors are read once
 * per call, and register-blocked products per group, parallel over blocks of token rows)
 * rather than a loop over adapters. The
 * input may have any number of dimensions: row i of dimension 0 ([batch, seq, in] for a
 * transformer) uses its adapter for all of its token rows, with no copy of the input. Ranks
 * may differ between adapters. Float32 and float64 run fused; adapters of other dtypes
 * (float16, bfloat16) are held in float32. Inference only: the result records no gradients.
 *
 * <p>Memory: one copy of each adapter's factors, in the stacks (a resident adapter of rank r
 * costs {@code R·(in + out)} elements, R the largest rank); {@link #put} and {@link #remove}
 * re-stack, {@link #putAll} re-stacks once for many adapters.
 *
 * <p>Owns copies of the factors it was given; {@link #close()} frees them. Thread-safe:
 * {@link #delta} runs on many threads at once; {@link #put}, {@link #remove} and
 * {@link #close} wait for running deltas (a read-write lock) and the deltas after them see
 * the change whole. A delta after close is an {@link IllegalStateException}.
 */
public final class AdapterBank implements AutoCloseable {

    /** The name that selects no adapter: the row gets the base layer's output only. */
    public static final String BASE = "__base__";

    /** A (r, in) and Bᵀ (r, out) of one adapter: views into the stacks once they are built. */
    private record Entry(Tensor a, Tensor bt, double scale) {
        void close() {
            a.close();
            bt.close();
        }
    }

    /** Fused calls made by each thread (tests check that a path is the fused one). */
    private static final ThreadLocal<long[]> FUSED_CALLS = ThreadLocal.withInitial(() -> new long[1]);

    private final long inFeatures;
    private final long outFeatures;
    private final Map<String, Entry> adapters = new LinkedHashMap<>();
    private Map<String, Integer> slots = Map.of(BASE, 0);
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
        if (layer.config().useDora()) throw new IllegalArgumentException("DoRA adapters are not supported here (LoraLinear serves them exactly)");
        put(name, layer.loraA(), layer.loraB(), layer.scaling());
    }

    /** Adds (or replaces) adapter {@code name}: A (r, in), B (out, r), scale s. The bank keeps copies. */
    public void put(String name, Tensor a, Tensor b, double scale) {
        putAll(List.of(name), List.of(a), List.of(b), new double[] {scale});
    }

    /**
     * Adds (or replaces) every adapter of {@code layer} under its own name, re-stacking once
     * (many {@link #put} calls re-stack once each).
     */
    public void putAll(LoraLinear layer) {
        Objects.requireNonNull(layer, "layer");
        List<String> names = layer.adapterNames();
        for (String n : names) {
            if (layer.dora(n) != null) throw new IllegalArgumentException("DoRA adapter '" + n + "' is not supported here (LoraLinear serves it exactly)");
        }
        List<Tensor> as = new ArrayList<>();
        List<Tensor> bs = new ArrayList<>();
        double[] scales = new double[names.size()];
        for (int i = 0; i < names.size(); i++) {
            as.add(layer.loraA(names.get(i)));
            bs.add(layer.loraB(names.get(i)));
            scales[i] = layer.scaling(names.get(i));
        }
        putAll(names, as, bs, scales);
    }

    private void putAll(List<String> names, List<Tensor> as, List<Tensor> bs, double[] scales) {
        for (int i = 0; i < names.size(); i++) {
            String name = Objects.requireNonNull(names.get(i), "name");
            Tensor a = Objects.requireNonNull(as.get(i), "a");
            Tensor b = Objects.requireNonNull(bs.get(i), "b");
            if (name.equals(BASE)) throw new IllegalArgumentException("'" + BASE + "' is reserved for rows without an adapter");
            if (a.dim() != 2 || b.dim() != 2 || a.size(1) != inFeatures || b.size(0) != outFeatures || a.size(0) != b.size(1)) {
                throw new IllegalArgumentException("adapter '" + name + "' needs A (r, " + inFeatures + ") and B (" + outFeatures
                        + ", r), got " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
            }
            if (!Double.isFinite(scales[i])) throw new IllegalArgumentException("scale must be finite, got " + scales[i]);
        }
        lock.writeLock().lock();
        try {
            ensureOpen();
            try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                for (int i = 0; i < names.size(); i++) {
                    Tensor ac = as.get(i).detach().clone().keep();
                    Tensor bt = bs.get(i).detach().t().clone().keep();
                    Calls.own(ac);
                    Calls.own(bt);
                    Entry old = adapters.put(names.get(i), new Entry(ac, bt, scales[i]));
                    if (old != null) old.close();
                }
            }
            rebuild();
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Removes adapter {@code name}; returns whether it was there. */
    public boolean remove(String name) {
        lock.writeLock().lock();
        try {
            Entry old = adapters.remove(name);
            if (old == null) return false;
            old.close();
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

    /**
     * The native bytes of the stacked factors and scales: what the resident adapters cost
     * (the bank holds no other copy).
     */
    public long nbytes() {
        lock.readLock().lock();
        try {
            long n = 0;
            for (Tensor t : new Tensor[] {aStack, bStack, scaleVec}) if (t != null) n += t.numel() * t.dtype().byteSize();
            return n;
        } finally {
            lock.readLock().unlock();
        }
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("this AdapterBank is closed");
    }

    /**
     * Stacks every adapter into A (n, R, in), Bᵀ (n, R, out) and scales (n), zero-padded to
     * the largest rank R, in float64 when any adapter is float64 and float32 otherwise; the
     * entries become views into the new stacks, so each adapter is held once.
     */
    private void rebuild() {
        Tensor[] old = {aStack, bStack, scaleVec};
        aStack = bStack = scaleVec = null;
        Map<String, Integer> newSlots = new LinkedHashMap<>();
        newSlots.put(BASE, 0);
        if (!adapters.isEmpty()) {
            try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                DType type = adapters.values().stream().anyMatch(e -> e.a().dtype() == DType.FLOAT64) ? DType.FLOAT64 : DType.FLOAT32;
                long maxRank = adapters.values().stream().mapToLong(e -> e.a().size(0)).max().orElse(1);
                List<Tensor> pa = new ArrayList<>();
                List<Tensor> pb = new ArrayList<>();
                double[] sc = new double[adapters.size()];
                int i = 0;
                for (var e : adapters.entrySet()) {
                    pa.add(padded(e.getValue().a(), maxRank, type));
                    pb.add(padded(e.getValue().bt(), maxRank, type));
                    sc[i++] = e.getValue().scale();
                    newSlots.put(e.getKey(), i);
                }
                aStack = Tensor.stack(pa, 0).keep();
                bStack = Tensor.stack(pb, 0).keep();
                scaleVec = Tensor.of(sc, sc.length).to(type).keep();
                for (Tensor t : new Tensor[] {aStack, bStack, scaleVec}) Calls.own(t);
            }
            try (TensorScope s = TensorScope.open()) {
                int k = 0;
                for (var e : adapters.entrySet()) {
                    Entry was = e.getValue();
                    long r = was.a().size(0), maxRank = aStack.size(1);
                    Tensor a = aStack.narrow(0, k, 1).view(maxRank, inFeatures).narrow(0, 0, r).keep();
                    Tensor bt = bStack.narrow(0, k, 1).view(maxRank, outFeatures).narrow(0, 0, r).keep();
                    Calls.own(a);
                    Calls.own(bt);
                    e.setValue(new Entry(a, bt, was.scale()));
                    was.close();
                    k++;
                }
            }
        }
        slots = Map.copyOf(newSlots);
        for (Tensor t : old) if (t != null) t.close();
    }

    /** {@code m} (r, cols) in {@code type}, zero rows appended up to {@code rank}. */
    private static Tensor padded(Tensor m, long rank, DType type) {
        Tensor t = m.to(type);
        long r = m.size(0);
        return r == rank ? t : Tensor.cat(List.of(t, Tensor.zeros(type, rank - r, m.size(1))), 0);
    }

    /** The adapter index of each name in the stacks, -1 for {@link #BASE}. */
    private long[] indicesOf(String[] names) {
        Map<String, Integer> s = slots;
        long[] idx = new long[names.length];
        for (int i = 0; i < names.length; i++) {
            Integer k = s.get(Objects.requireNonNull(names[i], "names[" + i + "]"));
            if (k == null) throw new IllegalArgumentException("no adapter named '" + names[i] + "' (have " + adapters.keySet() + ")");
            idx[i] = k - 1;
        }
        return idx;
    }

    /**
     * The LoRA update of every row of {@code x} (N, ..., in) with that row's adapter: (N, ..., out),
     * row i of dimension 0 (all of its token rows) with adapter {@code names[i]}. Rows named
     * {@link #BASE} get zeros. The result is in the bank's dtype (float64 when an adapter is,
     * float32 otherwise; another x is cast to it) and belongs to the caller.
     */
    public Tensor delta(Tensor x, String... names) {
        Objects.requireNonNull(x, "x");
        if (x.dim() < 2 || x.size(x.dim() - 1) != inFeatures) {
            throw new IllegalArgumentException("x must be (N, ..., " + inFeatures + "), got " + Arrays.toString(x.shape()));
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

    /** The dtype deltas are computed in: float64 when an adapter is, float32 otherwise. */
    DType dtype() {
        Tensor a = aStack;
        return a == null ? DType.FLOAT32 : a.dtype();
    }

    private Tensor deltaLocked(Tensor x, String[] names) {
        long[] idx = indicesOf(names);
        long[] outShape = x.shape();
        outShape[outShape.length - 1] = outFeatures;
        if (aStack == null) return Tensor.zeros(dtype(), outShape);
        if (x.dtype() == aStack.dtype()) return fused(x, idx);
        try (Tensor cast = x.to(aStack.dtype())) {
            return fused(cast, idx);
        }
    }

    /** The fused kernel: {@code adapter[i]} indexes the stacks, -1 for none. */
    private Tensor fused(Tensor x, long[] adapter) {
        PerThread t = PerThread.get();
        Tensor[] operands = {x, aStack, bStack, scaleVec};
        var h = Calls.pinAll(operands, new String[] {"x", "aStack", "bStack", "scale"});
        try {
            Status.check(lt_lora_mixed(h[0], h[1], h[2], h[3], t.longs(1, adapter), adapter.length, t.out0), "AdapterBank.delta");
        } finally {
            Calls.unpinAll(operands);
            Reference.reachabilityFence(this);
        }
        FUSED_CALLS.get()[0]++;
        return Calls.adopt(t, PerThread.address(t.out0));
    }

    /** How many fused calls this thread has made (for tests that a path is the fused one). */
    static long fusedCalls() {
        return FUSED_CALLS.get()[0];
    }

    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            closed = true;
            adapters.values().forEach(Entry::close);
            adapters.clear();
            for (Tensor t : new Tensor[] {aStack, bStack, scaleVec}) if (t != null) t.close();
            aStack = bStack = scaleVec = null;
        } finally {
            lock.writeLock().unlock();
        }
    }
}
