package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.HfConv1D;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.PackedTokens;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The common part of every LoRA layer: a base layer with a frozen weight (child
 * {@code base_layer}) and one or more named adapters, each a low-rank update ΔW = s·B·A in the
 * base weight's layout, as PEFT's {@code LoraLayer}. The first adapter is {@value #DEFAULT_ADAPTER}
 * unless named otherwise.
 *
 * <h2>Named adapters</h2>
 * {@link #addAdapter} adds one, {@link #deleteAdapter} removes it, {@link #setActiveAdapters}
 * chooses which take part in forward (their sum is added to the base output; the others are
 * kept, frozen). Accessors without a name ({@link #config()}, {@link #scaling()}, {@link #r()})
 * speak of the first active adapter, PEFT's {@code active_adapter}. Layers of PEFT's kinds
 * ({@link LoraLinear}, {@link LoraEmbedding}, {@link LoraConv}) hold any number of adapters
 * under PEFT's names ({@code lora_A.<name>.weight}); {@link MergedLoraLinear} and DyLoRA layers
 * hold exactly one.
 *
 * <h2>Merging</h2>
 * Merging adds ΔW of the named (by default: the active) adapters into the base weight
 * ({@code W += ΔW}); merging a merged adapter is a no-op that logs a warning, never a second
 * add. A safe merge computes {@code W + ΔW} into a copy and refuses to commit it when it holds
 * NaN or infinity. For float16/bfloat16 weights, ΔW and the sum are computed in float32 and
 * rounded once; other weights are updated in their own type. {@link #unmerge()} subtracts
 * every merged ΔW again, last merged first. Forward adds the active adapters that are not
 * merged.
 *
 * <h2>dtypes</h2>
 * As PEFT's: a new adapter's factors take the base weight's floating dtype, except for
 * float16/bfloat16 weights, whose factors are float32 ({@link #factorType()}); the input of the
 * LoRA path is cast to the factors' dtype and the sum with the base output rounded once back to
 * the output's dtype. ΔW is computed in the factors' dtype too.
 *
 * <h2>Mixed batches</h2>
 * Inside {@link Lora#forward(Module, Tensor, String...)} each row of the batch uses the adapter
 * named for it ({@link AdapterBank#BASE} for none); a name this layer does not hold gives the
 * base output for that row, as in PEFT.
 *
 * <p>Ownership and thread-safety as {@link Module}: forwards in eval mode may run
 * concurrently (mixed batches included). Adding, deleting, activating, merging and enabling
 * may run while forwards do: they wait for running forwards of the model and the forwards
 * after them see the change whole (the read-write discipline of {@link AdapterLock}).
 */
public abstract class LoraLayer extends Module {

    /** The name of the adapter created by the constructors that take no name (PEFT's). */
    public static final String DEFAULT_ADAPTER = "default";

    private static final System.Logger LOG = System.getLogger("dev.lora4j.lora");

    /** The adapter name of every row, for the forward running on this thread (see {@link Lora#forward}). */
    private static final ThreadLocal<String[]> ROW_ADAPTERS = new ThreadLocal<>();

    private final Map<String, LoraConfig> configs = new LinkedHashMap<>();
    private volatile List<String> active = List.of();
    private final List<String> merged = new ArrayList<>();
    /** Whether each merged adapter's factors required gradients before merging (restored by unmerge). */
    private final Map<String, Boolean> trainableBeforeMerge = new java.util.HashMap<>();
    /** The version counters of each merged adapter's tensors when it was merged: unmerge subtracts the ΔW merged only if they are unchanged. */
    private final Map<String, long[]> mergedVersions = new java.util.HashMap<>();
    private boolean enabled = true;
    /** The lock this layer's changes and forwards hold: its own until a model takes it over (see {@link AdapterLock}). */
    volatile AdapterLock adapterLock = AdapterLock.forLayer();

    /** Wraps {@code base}, whose weight is frozen (as PEFT does), with no adapter yet; its bias is left as it is. */
    protected LoraLayer(Module base) {
        registerModule("base_layer", Objects.requireNonNull(base, "base"));
        if (base.hasParameter("weight") && base.parameter("weight") != null) base.parameter("weight").requiresGrad_(false);
    }

    /**
     * For layers that hold exactly one adapter and register its factors themselves: wraps
     * {@code base} and records adapter {@value #DEFAULT_ADAPTER} with {@code config}, active.
     */
    protected LoraLayer(Module base, LoraConfig config) {
        this(base);
        LoraConfig c = layoutOf(base, Objects.requireNonNull(config, "config"));
        checkVariant(c);
        configs.put(DEFAULT_ADAPTER, c);
        active = List.of(DEFAULT_ADAPTER);
    }

    /**
     * Refuses settings this layer kind does not implement: DoRA and the inits that change the base
     * weight (PiSSA, OLoRA) are {@link LoraLinear}'s only.
     */
    protected void checkVariant(LoraConfig config) {
        if (config.useDora() || InitSvd.handles(config)) {
            throw new UnsupportedOperationException(getClass().getSimpleName() + " does not support "
                    + (config.useDora() ? "use_dora" : "init_lora_weights=" + config.initLoraWeights()) + " (LoraLinear does)");
        }
    }

    /**
     * A layer's own per-adapter parameters besides A and B (DoRA's magnitude): they train, freeze
     * and stay frozen while merged together with the factors. None by default.
     */
    protected List<Tensor> variantParameters(String name) {
        return List.of();
    }

    /** Adapter {@code name}'s trainable tensors: A, B and {@link #variantParameters}. */
    private List<Tensor> adapterParameters(String name) {
        List<Tensor> extra = variantParameters(name);
        if (extra.isEmpty()) return List.of(loraA(name), loraB(name));
        List<Tensor> all = new ArrayList<>(List.of(loraA(name), loraB(name)));
        all.addAll(extra);
        return all;
    }

    /**
     * Merges (sign 1) or unmerges (sign −1) adapter {@code name} when its kind does not simply
     * add ΔW (DoRA); returns false to let the plain add/subtract run.
     */
    protected boolean applyVariant(String name, double sign, boolean safe) {
        return false;
    }

    /**
     * {@code config} with {@code fanInFanOut} set to what {@code base} stores, as PEFT corrects it
     * (with a warning): false for a {@link Linear} (weight (out, in)), true for GPT-2's
     * {@link HfConv1D} (weight (in, out)); other bases keep the config's flag.
     */
    static LoraConfig layoutOf(Module base, LoraConfig config) {
        boolean want;
        if (base instanceof Linear) want = false;
        else if (base instanceof HfConv1D) want = true;
        else return config;
        if (config.fanInFanOut() == want) return config;
        LOG.log(System.Logger.Level.WARNING, "fan_in_fan_out is set to " + config.fanInFanOut() + " but the target module is a "
                + base.getClass().getSimpleName() + ": setting fan_in_fan_out to " + want);
        return config.withFanInFanOut(want);
    }

    /**
     * Runs {@code body} holding this layer's adapter lock (see {@link AdapterLock}): the write lock
     * for a subclass's own changes of adapter state, the read lock for its own forwards.
     */
    protected final <T, E extends Exception> T withAdapterLock(boolean write, AdapterLock.Body<T, E> body) throws E {
        return AdapterLock.holding(AdapterLock.lock(this, write), body);
    }

    /** The wrapped layer. */
    public Module baseLayer() {
        return child("base_layer");
    }

    // ------------------------------------------------------------------ named adapters

    /**
     * Adds adapter {@code name} with its own rank, α, dropout and init (PEFT's
     * {@code update_layer}). The first adapter of a layer becomes active; later ones are added
     * inactive and frozen until {@link #setActiveAdapters} picks them.
     *
     * @throws IllegalArgumentException for a name already used, empty, with a dot, or
     *     {@link AdapterBank#BASE}
     * @throws UnsupportedOperationException for layers that hold one adapter only
     */
    public final void addAdapter(String name, LoraConfig config) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            addAdapterLocked(name, config);
        } finally {
            held.close();
        }
    }

    private void addAdapterLocked(String name, LoraConfig config) {
        ensureOpen();
        checkNewName(name);
        config = layoutOf(baseLayer(), Objects.requireNonNull(config, "config"));
        checkVariant(config);
        createAdapter(name, config);
        configs.put(name, config);
        if (configs.size() == 1) active = List.of(name);
        applyTrainable();
    }

    /**
     * Deletes adapter {@code name} and frees its factors. When it was active, the remaining
     * active adapters stay active (none may remain: forward is then the base layer's).
     *
     * @throws IllegalStateException when the adapter is merged (unmerge first)
     */
    public final void deleteAdapter(String name) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            deleteAdapterLocked(name);
        } finally {
            held.close();
        }
    }

    private void deleteAdapterLocked(String name) {
        ensureOpen();
        requireAdapter(name);
        if (merged.contains(name)) throw new IllegalStateException("adapter '" + name + "' is merged: unmerge before deleting it");
        destroyAdapter(name);
        configs.remove(name);
        List<String> now = new ArrayList<>(active);
        now.remove(name);
        active = List.copyOf(now);
    }

    /**
     * Makes exactly {@code names} take part in forward (PEFT's {@code set_adapter}); their factors
     * require gradients, the other adapters' do not. No names: only the base layer's output.
     */
    public final void setActiveAdapters(String... names) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            setActiveAdaptersLocked(names);
        } finally {
            held.close();
        }
    }

    private void setActiveAdaptersLocked(String... names) {
        ensureOpen();
        List<String> now = List.of(names);
        for (String n : now) requireAdapter(n);
        if (new java.util.HashSet<>(now).size() != now.size()) throw new IllegalArgumentException("adapter named twice in " + now);
        active = now;
        applyTrainable();
    }

    /** The names of the adapters that take part in forward. */
    public final List<String> activeAdapters() {
        return active;
    }

    /** Every adapter's name, in the order they were added. */
    public final List<String> adapterNames() {
        return List.copyOf(configs.keySet());
    }

    public final boolean hasAdapter(String name) {
        return configs.containsKey(name);
    }

    /** The adapters merged into the base weight, in merge order. */
    public final List<String> mergedAdapters() {
        return Collections.unmodifiableList(new ArrayList<>(merged));
    }

    /** Replaces adapter {@code name}'s settings, for {@link Hotswap}; its r must be the factors' rank. */
    final void replaceConfig(String name, LoraConfig config) {
        requireAdapter(name);
        configs.put(name, layoutOf(baseLayer(), Objects.requireNonNull(config, "config")));
    }

    /** The settings adapter {@code name} was created with. */
    public final LoraConfig config(String name) {
        requireAdapter(name);
        return configs.get(name);
    }

    /** The scale s of adapter {@code name}: α/r, or α/√r with rsLoRA. */
    public double scaling(String name) {
        return config(name).scaling();
    }

    /** The settings of the first active adapter (PEFT's {@code active_adapter}). */
    public LoraConfig config() {
        return config(primary());
    }

    public int r() {
        return config().r();
    }

    /** The scale of the first active adapter. */
    public double scaling() {
        return scaling(primary());
    }

    /** The first active adapter, else the first one added. */
    protected final String primary() {
        List<String> a = active;
        if (!a.isEmpty()) return a.get(0);
        if (configs.isEmpty()) throw new IllegalStateException(getClass().getSimpleName() + " holds no adapter");
        return configs.keySet().iterator().next();
    }

    /** Factor A of adapter {@code name} (rank along dimension 0), owned by this layer. */
    public abstract Tensor loraA(String name);

    /** Factor B of adapter {@code name} (rank along dimension 1), owned by this layer. */
    public abstract Tensor loraB(String name);

    /** A of the first active adapter. */
    public Tensor loraA() {
        return loraA(primary());
    }

    /** B of the first active adapter. */
    public Tensor loraB() {
        return loraB(primary());
    }

    /** Registers the factors (and dropout) of a new adapter; the default refuses (one-adapter layers). */
    protected void createAdapter(String name, LoraConfig config) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " holds one adapter only");
    }

    /** Removes and frees the factors of adapter {@code name}; the default refuses (one-adapter layers). */
    protected void destroyAdapter(String name) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " holds one adapter only");
    }

    private void applyTrainable() {
        List<String> a = active;
        for (String n : configs.keySet()) {
            boolean train = a.contains(n);
            if (merged.contains(n)) {
                trainableBeforeMerge.put(n, train);
                train = false;
            }
            for (Tensor f : adapterParameters(n)) f.requiresGrad_(train);
        }
    }

    /**
     * Freezes the factors of merged adapters and drops their gradients: while merged, an
     * optimizer step must not move them, or unmerging would not restore the base weight.
     */
    final void freezeMerged() {
        for (String n : merged) {
            for (Tensor f : adapterParameters(n)) {
                f.requiresGrad_(false);
                f.clearGrad();
            }
        }
    }

    /** Freezes the factors of adapters that are not active (as PEFT's set_adapter leaves them), for {@link Lora#markOnlyLoraAsTrainable}. */
    final void freezeInactive() {
        for (String n : configs.keySet()) if (!active.contains(n)) freezeAdapter(n);
    }

    /**
     * Freezes adapter {@code name}'s factors (PEFT loads adapters this way unless
     * {@code is_trainable}); {@link #setActiveAdapters} makes active adapters trainable again.
     */
    public final void freezeAdapter(String name) {
        requireAdapter(name);
        for (Tensor f : adapterParameters(name)) f.requiresGrad_(false);
        if (merged.contains(name)) trainableBeforeMerge.put(name, false);
    }

    private void checkNewName(String name) {
        Objects.requireNonNull(name, "name");
        if (!Lora.isValidAdapterName(name)) {
            throw new IllegalArgumentException("an adapter name must be non-empty, without dots and not '" + AdapterBank.BASE
                    + "', got '" + name + "'");
        }
        if (configs.containsKey(name)) throw new IllegalArgumentException("adapter '" + name + "' already exists in " + getClass().getSimpleName());
    }

    private void requireAdapter(String name) {
        Objects.requireNonNull(name, "adapter name");
        if (!configs.containsKey(name)) {
            throw new IllegalArgumentException("no adapter named '" + name + "' in " + getClass().getSimpleName() + " (have "
                    + configs.keySet() + ")");
        }
    }

    // ------------------------------------------------------------------ unload

    /**
     * Merges the active adapters (those not merged yet), closes every adapter and returns the
     * base layer, which the caller owns from now on (PEFT's {@code merge_and_unload} for one layer).
     */
    public final Module mergeAndUnload(boolean safe) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            return mergeAndUnloadLocked(safe);
        } finally {
            held.close();
        }
    }

    private Module mergeAndUnloadLocked(boolean safe) {
        merge(safe);
        return unload();
    }

    /**
     * Closes the adapters without merging them and returns the base layer (unchanged unless
     * adapters were merged), which the caller owns from now on (PEFT's {@code unload}).
     */
    public final Module unload() {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            return unloadLocked();
        } finally {
            held.close();
        }
    }

    private Module unloadLocked() {
        ensureOpen();
        Module base = removeModule("base_layer");
        close();
        return base;
    }

    // ------------------------------------------------------------------ enabling

    public boolean isMerged() {
        return !merged.isEmpty();
    }

    /** Whether the adapters take part in forward at all. */
    public boolean isAdapterEnabled() {
        return enabled;
    }

    /**
     * Switches every adapter off (forward = the base layer's original computation) or on,
     * without removing them. Disabling unmerges merged adapters first, as PEFT does, so the
     * base layer really is the original.
     */
    public void setAdapterEnabled(boolean enabled) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            setAdapterEnabledLocked(enabled);
        } finally {
            held.close();
        }
    }

    private void setAdapterEnabledLocked(boolean enabled) {
        ensureOpen();
        if (!enabled && isMerged()) unmerge();
        this.enabled = enabled;
    }

    // ------------------------------------------------------------------ computation

    /** The base layer's weight (the tensor merging changes), owned by the base layer. */
    protected abstract Tensor baseWeight();

    /** Adapter {@code name}'s contribution to the output, scale included; the caller owns it. */
    protected abstract Tensor loraForward(Tensor input, String name);

    /** ΔW = s·B·A of adapter {@code name} in the base weight's shape and layout, computed in {@code dtype}; the caller owns it. */
    protected abstract Tensor deltaWeight(DType dtype, String name);

    /**
     * The dtype of a new adapter's factors, as PEFT: the base weight's floating dtype, except
     * float16/bfloat16 (and non-floating) weights, whose factors are float32; the LoRA path then
     * runs in float32 and its sum with the base output is rounded once to the output's dtype.
     */
    protected final DType factorType() {
        return factorType(baseWeight().dtype());
    }

    /** {@link #factorType()} for a base weight of dtype {@code weight}. */
    public static DType factorType(DType weight) {
        return weight == DType.FLOAT16 || weight == DType.BFLOAT16 || !weight.isFloatingPoint() ? DType.FLOAT32 : weight;
    }

    /**
     * {@code x} as the LoRA path computes it: converted to {@code factor}'s dtype when both are
     * floating and differ (PEFT's {@code _cast_input_dtype}), else {@code x} itself. The caller
     * closes the result when it is not {@code x}.
     */
    protected static Tensor castInput(Tensor x, Tensor factor) {
        DType want = factor.dtype();
        return x.dtype() == want || !x.dtype().isFloatingPoint() ? x : x.to(want);
    }

    /** ΔW of the first active adapter in the base weight's dtype (computed as merging computes it); the caller owns it. */
    public final Tensor deltaWeight() {
        return deltaWeight(primary());
    }

    /** ΔW of adapter {@code name} in the base weight's dtype; the caller owns it. */
    public final Tensor deltaWeight(String name) {
        requireAdapter(name);
        try (var ng = Torch.noGrad(); Tensor d = deltaWeight(factorType(), name)) {
            return d.to(baseWeight().dtype());
        }
    }

    @Override
    public Tensor forward(Tensor input) {
        AdapterLock.Held held = AdapterLock.lock(this, false);
        try {
            return forwardLocked(input);
        } finally {
            held.close();
        }
    }

    private Tensor forwardLocked(Tensor input) {
        String[] rows = ROW_ADAPTERS.get();
        if (rows != null && input.dim() > 0) rows = PackedTokens.spreadRows(rows, input.size(0)); // a packed forward: per token
        if (rows == null && enabled && merged.isEmpty()) {
            List<String> act = active;
            if (act.size() == 1) {
                Tensor fused = fusedForward(input, act.get(0));
                if (fused != null) return fused;
            }
        }
        Tensor base = baseLayer().forward(input);
        if (!enabled || configs.isEmpty()) return base;
        DType out = base.dtype();
        try {
            if (rows != null) return restoreType(addOrKeep(base, mixedDelta(input, rows)), out);
            for (String name : active) {
                if (!merged.isEmpty() && merged.contains(name)) continue;
                base = addAdapter(base, input, name);
            }
            return restoreType(base, out);
        } catch (RuntimeException | Error e) {
            base.close(); // refused after the base ran (a mixed batch that does not fit, ...): nothing stays behind
            throw e;
        }
    }

    /**
     * The whole forward, base and the one active adapter {@code name}, as one fused call, or
     * null when this layer cannot fuse it (then the base runs and {@link #addAdapter} adds the
     * update). Only called with exactly one active, unmerged adapter, enabled, and no mixed
     * batch. The default fuses nothing.
     */
    protected Tensor fusedForward(Tensor input, String name) {
        return null;
    }

    /**
     * {@code y} in dtype {@code out} (closing {@code y} when converted): a float32 LoRA path on a
     * float16/bfloat16 base promotes the sum, which is rounded back once, as PEFT does.
     */
    protected static Tensor restoreType(Tensor y, DType out) {
        if (y.dtype() == out) return y;
        try (y) {
            return y.to(out);
        }
    }

    /**
     * {@code base} plus adapter {@code name}'s update of {@code input}; closes {@code base} when
     * it returns a new tensor. {@link LoraLinear} fuses it into one native call.
     */
    protected Tensor addAdapter(Tensor base, Tensor input, String name) {
        return addOrKeep(base, loraForward(input, name));
    }

    /** {@code base + delta} (closing both) or {@code base} when delta is null. */
    private static Tensor addOrKeep(Tensor base, Tensor delta) {
        if (delta == null) return base;
        try (delta) {
            Tensor sum = base.add(delta);
            base.close();
            return sum;
        }
    }

    /**
     * The adapters' contribution to a mixed batch, row i with adapter {@code rows[i]}, or null
     * when no row names an adapter of this layer. This implementation runs each adapter on its
     * own rows (gathered, then scattered back); {@link LoraLinear} overrides it with one fused
     * call for inference.
     */
    protected Tensor mixedDelta(Tensor input, String[] rows) {
        checkMixed(input, rows);
        Map<String, List<Integer>> groups = groupRows(rows);
        if (groups.isEmpty()) return null;
        PER_ADAPTER_CALLS.get()[0]++;
        int n = rows.length;
        long[] order = new long[n];
        int k = 0;
        List<Tensor> pieces = new ArrayList<>();
        try (TensorScope s = TensorScope.open()) {
            for (var g : groups.entrySet()) {
                long[] idx = g.getValue().stream().mapToLong(Integer::longValue).toArray();
                System.arraycopy(idx, 0, order, k, idx.length);
                k += idx.length;
                Tensor sub = input.indexSelect(0, Tensor.of(idx, idx.length));
                pieces.add(loraForward(sub, g.getKey()));
            }
            if (k < n) {
                long[] shape = pieces.get(0).shape();
                shape[0] = n - k;
                pieces.add(Tensor.zeros(pieces.get(0).dtype(), shape));
                for (int i = 0; i < n; i++) if (!groups.containsKey(rows[i])) order[k++] = i;
            }
            long[] inverse = new long[n];
            for (int i = 0; i < n; i++) inverse[(int) order[i]] = i;
            return Tensor.cat(pieces, 0).indexSelect(0, Tensor.of(inverse, n)).keep();
        }
    }

    /** Mixed batches each thread ran adapter by adapter (tests check which path a batch took). */
    private static final ThreadLocal<long[]> PER_ADAPTER_CALLS = ThreadLocal.withInitial(() -> new long[1]);

    /** How many mixed batches this thread ran adapter by adapter ({@link #mixedDelta}'s own loop). */
    static long perAdapterCalls() {
        return PER_ADAPTER_CALLS.get()[0];
    }

    /** Rows by adapter, for the adapters of this layer named in {@code rows} (first appearance order). */
    protected final Map<String, List<Integer>> groupRows(String[] rows) {
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int i = 0; i < rows.length; i++) {
            if (configs.containsKey(rows[i])) groups.computeIfAbsent(rows[i], x -> new ArrayList<>()).add(i);
        }
        return groups;
    }

    /** Checks that a mixed batch fits: one name per row and no merged adapter. */
    protected final void checkMixed(Tensor input, String[] rows) {
        if (input.dim() == 0 || input.size(0) != rows.length) {
            throw new IllegalArgumentException(rows.length + " adapter names for an input of shape "
                    + java.util.Arrays.toString(input.shape()) + " (one name per row of dimension 0)");
        }
        if (isMerged()) throw new IllegalStateException("a mixed batch needs unmerged adapters; " + merged + " are merged: unmerge first");
    }

    /** Runs {@code body} with {@code rows} as the adapter of each row of this thread's forwards. */
    static <T> T withRowAdapters(String[] rows, java.util.function.Supplier<T> body) {
        String[] before = ROW_ADAPTERS.get();
        ROW_ADAPTERS.set(rows);
        try {
            return body.get();
        } finally {
            if (before == null) ROW_ADAPTERS.remove();
            else ROW_ADAPTERS.set(before);
        }
    }

    // ------------------------------------------------------------------ merging

    /** Merges the active adapters with {@code safe = false}; returns whether any merged now. */
    public final boolean merge() {
        return merge(false);
    }

    /**
     * Adds ΔW of each named adapter (none named: the active ones) into the base weight, in
     * order. An adapter already merged is skipped with a warning. Returns whether any merged now.
     *
     * @throws IllegalStateException when {@code safe} and a merged weight would not be finite
     *     (the weight is then left as the adapters merged before it left it)
     */
    public final boolean merge(boolean safe, String... names) {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            return mergeLocked(safe, names);
        } finally {
            held.close();
        }
    }

    private boolean mergeLocked(boolean safe, String... names) {
        ensureOpen();
        List<String> todo = names.length == 0 ? active : List.of(names);
        for (String n : todo) requireAdapter(n);
        if (safe) checkMerge(names);
        boolean any = false;
        for (String n : todo) {
            if (merged.contains(n)) {
                LOG.log(System.Logger.Level.WARNING, "LoRA adapter '" + n + "' is already merged: merge ignored");
                continue;
            }
            apply(n, 1.0, safe);
            trainableBeforeMerge.put(n, loraA(n).requiresGrad() || loraB(n).requiresGrad());
            mergedVersions.put(n, versions(n));
            merged.add(n);
            any = true;
        }
        freezeMerged();
        if (any) enabled = true;
        return any;
    }

    /**
     * Checks, changing nothing, that merging the named adapters (none named: the active ones)
     * gives a finite weight: the base weight plus every ΔW not merged yet, in the type merging
     * computes in. {@link Lora#merge} and {@link Lora#mergeAndUnload} with {@code safe} check
     * every layer this way before changing any.
     *
     * @throws IllegalStateException when the merged weight would hold NaN or infinity
     */
    public final void checkMerge(String... names) {
        ensureOpen();
        List<String> todo = names.length == 0 ? active : List.of(names);
        for (String n : todo) requireAdapter(n);
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            Tensor w = baseWeight().to(factorType());
            for (String n : new java.util.LinkedHashSet<>(todo)) {
                if (!merged.contains(n)) w = mergedWith(w, n);
            }
            if (!w.allFinite()) {
                throw new IllegalStateException("safe merge refused: the merged weight of " + getClass().getSimpleName()
                        + " with adapters " + todo + " would hold NaN or infinity (an adapter is probably broken)");
            }
        }
    }

    /**
     * {@code w} (the stored weight in {@link #factorType()}) with adapter {@code name} merged as
     * merging computes it, for {@link #checkMerge}: W + ΔW, or a variant's own merged weight
     * (DoRA's); the result lives in the caller's tensor scope.
     */
    protected Tensor mergedWith(Tensor w, String name) {
        return w.add(deltaWeight(factorType(), name));
    }

    /** Subtracts every merged ΔW again, last merged first; returns false, with a warning, when none was merged. */
    public final boolean unmerge() {
        AdapterLock.Held held = AdapterLock.lock(this, true);
        try {
            return unmergeLocked();
        } finally {
            held.close();
        }
    }

    private boolean unmergeLocked() {
        ensureOpen();
        if (merged.isEmpty()) {
            LOG.log(System.Logger.Level.WARNING, "LoRA layer is not merged: unmerge ignored");
            return false;
        }
        for (String n : merged) { // every adapter before any changes
            if (!java.util.Arrays.equals(versions(n), mergedVersions.get(n))) {
                throw new IllegalStateException("adapter '" + n + "' was changed while merged (its factors were written, e.g. by"
                        + " loadStateDict): unmerging would subtract another ΔW than the one merged and not restore the base weight");
            }
        }
        while (!merged.isEmpty()) {
            String n = merged.get(merged.size() - 1);
            apply(n, -1.0, false);
            merged.remove(merged.size() - 1);
            mergedVersions.remove(n);
            boolean train = Boolean.TRUE.equals(trainableBeforeMerge.remove(n));
            for (Tensor f : adapterParameters(n)) f.requiresGrad_(train);
        }
        return true;
    }

    /** The version counters of adapter {@code name}'s tensors (every in-place write bumps one). */
    private long[] versions(String name) {
        return adapterParameters(name).stream().mapToLong(Tensor::version).toArray();
    }

    private void apply(String name, double sign, boolean safe) {
        if (applyVariant(name, sign, safe)) return;
        Tensor w = baseWeight();
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            DType compute = factorType();
            Tensor delta = deltaWeight(compute, name);
            if (!safe && compute == w.dtype()) {
                w.add_(delta, sign);
                return;
            }
            Tensor updated = w.to(compute).add(delta, sign);
            if (safe && !updated.allFinite()) {
                throw new IllegalStateException("safe merge refused: the merged weight of " + getClass().getSimpleName()
                        + " with adapter '" + name + "' would hold NaN or infinity (the adapter is probably broken)");
            }
            w.copy_(updated);
        }
    }

    /** Transposes {@code t} when the base weight is stored (in, out). */
    protected final Tensor maybeTranspose(Tensor t) {
        return config().fanInFanOut() ? t.t() : t;
    }

    @Override
    protected String extraRepr() {
        if (configs.isEmpty()) return "no adapter";
        LoraConfig c = config();
        return "r=" + c.r() + ", lora_alpha=" + c.loraAlpha() + ", scaling=" + scaling()
                + (configs.size() > 1 || !configs.containsKey(DEFAULT_ADAPTER) ? ", adapters=" + configs.keySet() + ", active=" + active : "")
                + (merged.isEmpty() ? "" : ", merged=" + merged) + (enabled ? "" : ", disabled");
    }
}
