package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Module;
import java.util.Objects;

/**
 * The common part of every LoRA layer: a base layer with a frozen weight (child {@code base_layer}), a
 * low-rank update ΔW = s·B·A in the base weight's layout, and merge/unmerge.
 *
 * <p>Merging adds ΔW into the base weight ({@code W += ΔW}); merging a merged layer is a
 * no-op that logs a warning, never a second add. A safe merge computes {@code W + ΔW} into a
 * copy and refuses to commit it when it holds NaN or infinity. For float16/bfloat16 weights,
 * ΔW and the sum are computed in float32 and rounded once; other weights are updated in their
 * own type. {@link #unmerge()} subtracts ΔW again.
 *
 * <p>Ownership and thread-safety as {@link Module}: forwards in eval mode may run
 * concurrently; merge, unmerge and enabling are single-threaded.
 */
public abstract class LoraLayer extends Module {

    private static final System.Logger LOG = System.getLogger("dev.lora4j.lora");

    private final LoraConfig config;
    private boolean merged;
    private boolean enabled = true;

    /** Wraps {@code base}, whose weight is frozen (as loralib does); its bias is left as it is. */
    protected LoraLayer(Module base, LoraConfig config) {
        this.config = Objects.requireNonNull(config, "config");
        registerModule("base_layer", Objects.requireNonNull(base, "base"));
        if (base.hasParameter("weight") && base.parameter("weight") != null) base.parameter("weight").requiresGrad_(false);
    }

    /** The wrapped layer. */
    public Module baseLayer() {
        return child("base_layer");
    }

    public LoraConfig config() {
        return config;
    }

    public int r() {
        return config.r();
    }

    /**
     * Merges the adapter (if not merged yet), closes it and returns the base layer, which the
     * caller owns from now on (PEFT's {@code merge_and_unload} for one layer).
     */
    public final Module mergeAndUnload(boolean safe) {
        if (!merged) merge(safe);
        return unload();
    }

    /**
     * Closes the adapter without merging it and returns the base layer (unchanged unless it
     * was merged), which the caller owns from now on (PEFT's {@code unload}).
     */
    public final Module unload() {
        ensureOpen();
        Module base = removeModule("base_layer");
        close();
        return base;
    }

    /** The scale s of the update (α/r, or α/√r with rsLoRA). */
    public double scaling() {
        return config.scaling();
    }

    public boolean isMerged() {
        return merged;
    }

    /** Whether the adapter takes part in forward. */
    public boolean isAdapterEnabled() {
        return enabled;
    }

    /**
     * Switches the adapter off (forward = the base layer's original computation) or on,
     * without removing it. Disabling a merged adapter unmerges it first, as PEFT does, so the
     * base layer really is the original.
     */
    public void setAdapterEnabled(boolean enabled) {
        ensureOpen();
        if (!enabled && merged) unmerge();
        this.enabled = enabled;
    }

    /** The base layer's weight (the tensor merging changes), owned by the base layer. */
    protected abstract Tensor baseWeight();

    /** The adapter's contribution to the output, scale included (merged/enabled handled by forward). */
    protected abstract Tensor loraForward(Tensor input);

    /** ΔW = s·B·A in the base weight's shape and layout, computed in {@code dtype}; the caller owns it. */
    protected abstract Tensor deltaWeight(DType dtype);

    /**
     * The type ΔW is computed in: the weight's own, or float32 for float16/bfloat16 weights
     * (whose sums are then rounded once).
     */
    private DType computeType() {
        DType d = baseWeight().dtype();
        return d == DType.FLOAT16 || d == DType.BFLOAT16 ? DType.FLOAT32 : d;
    }

    /** ΔW in the base weight's dtype (computed as merging computes it); the caller owns it. */
    public final Tensor deltaWeight() {
        try (var ng = Torch.noGrad(); Tensor d = deltaWeight(computeType())) {
            return d.to(baseWeight().dtype());
        }
    }

    @Override
    public Tensor forward(Tensor input) {
        Tensor base = baseLayer().forward(input);
        if (merged || !enabled) return base;
        try (Tensor lora = loraForward(input)) {
            Tensor sum = base.add(lora);
            base.close();
            return sum;
        }
    }

    /** Merges with {@code safe = false}; returns whether it merged (false when already merged). */
    public final boolean merge() {
        return merge(false);
    }

    /**
     * Adds ΔW into the base weight. Returns false, with a warning, when already merged.
     *
     * @throws IllegalStateException when {@code safe} and the merged weight is not finite (the
     *     weight is then left untouched)
     */
    public final boolean merge(boolean safe) {
        ensureOpen();
        if (merged) {
            LOG.log(System.Logger.Level.WARNING, "LoRA layer is already merged: merge ignored");
            return false;
        }
        apply(1.0, safe);
        merged = true;
        enabled = true;
        return true;
    }

    /** Subtracts ΔW from the base weight again; returns false, with a warning, when not merged. */
    public final boolean unmerge() {
        ensureOpen();
        if (!merged) {
            LOG.log(System.Logger.Level.WARNING, "LoRA layer is not merged: unmerge ignored");
            return false;
        }
        apply(-1.0, false);
        merged = false;
        return true;
    }

    private void apply(double sign, boolean safe) {
        Tensor w = baseWeight();
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            DType compute = computeType();
            Tensor delta = deltaWeight(compute);
            if (!safe && compute == w.dtype()) {
                w.add_(delta, sign);
                return;
            }
            Tensor updated = w.to(compute).add(delta, sign);
            if (safe && !updated.allFinite()) {
                throw new IllegalStateException("safe merge refused: the merged weight of " + getClass().getSimpleName()
                        + " would hold NaN or infinity (the adapter is probably broken)");
            }
            w.copy_(updated);
        }
    }

    /** Transposes {@code t} when the base weight is stored (in, out). */
    protected final Tensor maybeTranspose(Tensor t) {
        return config.fanInFanOut() ? t.t() : t;
    }

    @Override
    protected String extraRepr() {
        return "r=" + config.r() + ", lora_alpha=" + config.loraAlpha() + ", scaling=" + scaling()
                + (merged ? ", merged" : "") + (enabled ? "" : ", disabled");
    }
}
