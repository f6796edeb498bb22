package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Module;
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
 * <h2>Mixed batches</h2>
 * Inside {@link Lora#forward(Module, Tensor, String...)} each row of the batch uses the adapter
 * named for it ({@link AdapterBank#BASE} for none); a name this layer does not hold gives the
 * base output for that row, as in PEFT.
 *
 * <p>Ownership and thread-safety as {@link Module}: forwards in eval mode may run
 * concurrently (mixed batches included); adding, deleting, activating, merging and enabling
 * are single-threaded, with no forward running.
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
    private boolean enabled = true;

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
        configs.put(DEFAULT_ADAPTER, Objects.requireNonNull(config, "config"));
        checkVariant(config);
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

    /** Makes a layer's own per-adapter parameters besides A and B (DoRA's magnitude) trainable or not. */
    protected void setAdapterTrainable(String name, boolean train) {}

    /**
     * Merges (sign 1) or unmerges (sign −1) adapter {@code name} when its kind does not simply
     * add ΔW (DoRA); returns false to let the plain add/subtract run.
     */
    protected boolean applyVariant(String name, double sign, boolean safe) {
        return false;
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
        ensureOpen();
        checkNewName(name);
        Objects.requireNonNull(config, "config");
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
        configs.put(name, Objects.requireNonNull(config, "config"));
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
            loraA(n).requiresGrad_(train);
            loraB(n).requiresGrad_(train);
            setAdapterTrainable(n, train);
        }
    }

    private void checkNewName(String name) {
        Objects.requireNonNull(name, "name");
        if (name.isEmpty() || name.contains(".") || name.equals(AdapterBank.BASE)) {
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
        merge(safe);
        return unload();
    }

    /**
     * Closes the adapters without merging them and returns the base layer (unchanged unless
     * adapters were merged), which the caller owns from now on (PEFT's {@code unload}).
     */
    public final Module unload() {
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
     * The type ΔW is computed in: the weight's own, or float32 for float16/bfloat16 weights
     * (whose sums are then rounded once).
     */
    private DType computeType() {
        DType d = baseWeight().dtype();
        return d == DType.FLOAT16 || d == DType.BFLOAT16 ? DType.FLOAT32 : d;
    }

    /** ΔW of the first active adapter in the base weight's dtype (computed as merging computes it); the caller owns it. */
    public final Tensor deltaWeight() {
        return deltaWeight(primary());
    }

    /** ΔW of adapter {@code name} in the base weight's dtype; the caller owns it. */
    public final Tensor deltaWeight(String name) {
        requireAdapter(name);
        try (var ng = Torch.noGrad(); Tensor d = deltaWeight(computeType(), name)) {
            return d.to(baseWeight().dtype());
        }
    }

    @Override
    public Tensor forward(Tensor input) {
        Tensor base = baseLayer().forward(input);
        if (!enabled || configs.isEmpty()) return base;
        String[] rows = ROW_ADAPTERS.get();
        if (rows != null) return addOrKeep(base, mixedDelta(input, rows));
        for (String name : active) {
            if (!merged.isEmpty() && merged.contains(name)) continue;
            base = addAdapter(base, input, name);
        }
        return base;
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
        ensureOpen();
        List<String> todo = names.length == 0 ? active : List.of(names);
        for (String n : todo) requireAdapter(n);
        boolean any = false;
        for (String n : todo) {
            if (merged.contains(n)) {
                LOG.log(System.Logger.Level.WARNING, "LoRA adapter '" + n + "' is already merged: merge ignored");
                continue;
            }
            apply(n, 1.0, safe);
            merged.add(n);
            any = true;
        }
        if (any) enabled = true;
        return any;
    }

    /** Subtracts every merged ΔW again, last merged first; returns false, with a warning, when none was merged. */
    public final boolean unmerge() {
        ensureOpen();
        if (merged.isEmpty()) {
            LOG.log(System.Logger.Level.WARNING, "LoRA layer is not merged: unmerge ignored");
            return false;
        }
        while (!merged.isEmpty()) {
            String n = merged.get(merged.size() - 1);
            apply(n, -1.0, false);
            merged.remove(merged.size() - 1);
        }
        return true;
    }

    private void apply(String name, double sign, boolean safe) {
        if (applyVariant(name, sign, safe)) return;
        Tensor w = baseWeight();
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            DType compute = computeType();
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
