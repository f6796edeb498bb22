package dev.lora4j.dylora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Module;
import java.util.List;

/**
 * A DyLoRA layer (Valipour et al., EACL 2023): one adapter of rank r_max = {@code config.r()}
 * usable at every rank b in 1..r_max. At rank b the forward uses the first b rows of
 * {@code lora_A} and the first b columns of {@code lora_B}, scaled by α/b (α/√b with rsLoRA).
 *
 * <p>During training a {@link DyLoraController} sets one rank per step for every DyLoRA layer
 * of a model. In {@linkplain Mode#FROZEN frozen} mode (the paper's) only row b of A and column
 * b of B receive gradients that step; in {@linkplain Mode#NESTED nested} mode all of the first b
 * do. After training, {@link #setRank} picks any rank for evaluation, merging or serving.
 *
 * <p>The factors take the base weight's dtype (float32 for float16/bfloat16 bases), as
 * {@link LoraLayer#factorType()} says. Factor layout (rank along A's dimension 0 and B's dimension 1): Linear A (r, in),
 * B (out, r); Embedding A (r, num_embeddings), B (dim, r); Conv A (r, in, *k), B (out, r, 1…).
 *
 * <p>Changing the rank range at run time: {@link #truncateRank}, {@link #padRank},
 * {@link #reinitialize}, and {@link #setAlpha}; each replaces or rescales the factors, so an
 * optimizer built before must be rebuilt. Threads: as {@link LoraLayer}: every change here
 * waits for the running forwards of the model and forwards see it whole; the current rank is
 * a per-layer setting, so threads that want different ranks use
 * {@link DyLora#forward(Module, Tensor, int)} or {@link #forward(Tensor, int)}.
 */
public abstract class DyLoraLayer extends LoraLayer {

    /** Which rows train at rank b. */
    public enum Mode {
        /** The paper's: only row b of A and column b of B get gradients (rows below are detached). */
        FROZEN,
        /** Every row up to b gets gradients (nested-dropout style). */
        NESTED
    }

    /** The rank for this thread's forwards inside {@link DyLora#forward(Module, Tensor, int)}; null outside. */
    static final ThreadLocal<Integer> CALL_RANK = new ThreadLocal<>();

    private volatile int rank;
    private double alpha;
    private Mode mode = Mode.FROZEN;

    protected DyLoraLayer(Module base, LoraConfig config) {
        super(base, config);
        this.rank = config.r();
        this.alpha = config.loraAlpha();
    }

    /** r_max: the largest rank the factors hold. */
    public int rMax() {
        return (int) loraA().size(0);
    }

    /** r_max (which the rank-changing operations may have changed since construction). */
    @Override
    public int r() {
        return rMax();
    }

    /** The rank used by forward and merge now. */
    public int rank() {
        return rank;
    }

    /** Sets the rank used by forward and merge (1..r_max). Not allowed while merged. */
    public void setRank(int b) {
        withAdapterLock(true, () -> {
            setRankLocked(b);
            return null;
        });
    }

    private void setRankLocked(int b) {
        checkRank(b);
        rank = b;
    }

    /** Throws what {@link #setRank} would throw for {@code b}, changing nothing (so a model's layers can be checked before any changes). */
    void checkRank(int b) {
        if (b < 1 || b > rMax()) throw new IllegalArgumentException("rank must be in 1.." + rMax() + ", got " + b);
        if (isMerged() && b != rank) throw new IllegalStateException("unmerge before changing the rank of a merged DyLoRA layer");
    }

    public Mode mode() {
        return mode;
    }

    public void setMode(Mode mode) {
        java.util.Objects.requireNonNull(mode, "mode");
        withAdapterLock(true, () -> this.mode = mode);
    }

    public double alpha() {
        return alpha;
    }

    /** Changes α (the scale becomes α/b). Not allowed while merged. */
    public void setAlpha(double alpha) {
        withAdapterLock(true, () -> {
            setAlphaLocked(alpha);
            return null;
        });
    }

    private void setAlphaLocked(double alpha) {
        if (!(alpha > 0) || Double.isInfinite(alpha)) throw new IllegalArgumentException("alpha must be > 0, got " + alpha);
        if (isMerged()) throw new IllegalStateException("unmerge before changing alpha");
        this.alpha = alpha;
    }

    /** α/b at the current rank b (α/√b with rsLoRA). */
    @Override
    public double scaling() {
        return scalingAt(rank);
    }

    /** {@link #scaling()}: a DyLoRA layer holds one adapter. */
    @Override
    public double scaling(String name) {
        config(name);
        return scaling();
    }

    /** The full factor A, parameter {@code lora_A} (r_max along dimension 0). */
    @Override
    public final Tensor loraA() {
        return parameter("lora_A");
    }

    /** The full factor B, parameter {@code lora_B} (r_max along dimension 1). */
    @Override
    public final Tensor loraB() {
        return parameter("lora_B");
    }

    /** {@link #loraA()}: a DyLoRA layer holds one adapter, {@value LoraLayer#DEFAULT_ADAPTER}. */
    @Override
    public final Tensor loraA(String name) {
        config(name);
        return loraA();
    }

    /** {@link #loraB()}: a DyLoRA layer holds one adapter. */
    @Override
    public final Tensor loraB(String name) {
        config(name);
        return loraB();
    }

    /** Registers (or replaces) both factors as trainable parameters {@code lora_A}, {@code lora_B}. */
    protected final void setFactors(Tensor a, Tensor b) {
        registerParameter("lora_A", a.requiresGrad_(true));
        registerParameter("lora_B", b.requiresGrad_(true));
    }

    /** The layer's adapter output for factors already cut to rank b, before scaling. */
    protected abstract Tensor forwardWith(Tensor input, Tensor a, Tensor b);

    /** ΔW before scaling, in the base weight's layout, from factors cut to rank b. */
    protected abstract Tensor deltaWith(Tensor a, Tensor b);

    /** A cut to rank b; in frozen training only its last row keeps its graph. */
    private Tensor cutA(int b, boolean train) {
        Tensor a = loraA();
        if (train && mode == Mode.FROZEN && b > 1) {
            return Tensor.cat(List.of(a.narrow(0, 0, b - 1).detach(), a.narrow(0, b - 1, 1)), 0);
        }
        return a.narrow(0, 0, b);
    }

    private Tensor cutB(int b, boolean train) {
        Tensor w = loraB();
        if (train && mode == Mode.FROZEN && b > 1) {
            return Tensor.cat(List.of(w.narrow(1, 0, b - 1).detach(), w.narrow(1, b - 1, 1)), 1);
        }
        return w.narrow(1, 0, b);
    }

    @Override
    protected final Tensor loraForward(Tensor input, String name) {
        Integer perCall = CALL_RANK.get();
        return loraForward(input, perCall == null ? rank : perCall);
    }

    private Tensor loraForward(Tensor input, int b) {
        boolean train = isTraining() && Torch.isGradEnabled();
        try (TensorScope s = TensorScope.open()) {
            Module dropout = children().get("lora_dropout");
            Tensor cast = castInput(input, loraA());
            Tensor x = dropout == null ? cast : dropout.forward(cast);
            return forwardWith(x, cutA(b, train), cutB(b, train)).mul(scalingAt(b)).keep();
        }
    }

    private double scalingAt(int b) {
        return config().useRslora() ? alpha / Math.sqrt(b) : alpha / b;
    }

    /**
     * The layer's output at rank {@code b} for this call only, without changing the layer's
     * rank: serving threads can each ask for their own rank at the same time (eval mode).
     * Not for a merged layer (its weight holds one rank's update).
     */
    public Tensor forward(Tensor input, int b) {
        return withAdapterLock(false, () -> forwardLocked(input, b));
    }

    private Tensor forwardLocked(Tensor input, int b) {
        ensureOpen();
        if (b < 1 || b > rMax()) throw new IllegalArgumentException("rank must be in 1.." + rMax() + ", got " + b);
        if (isMerged()) throw new IllegalStateException("a merged DyLoRA layer serves its merged rank only: unmerge first");
        Tensor base = baseLayer().forward(input);
        if (!isAdapterEnabled()) return base;
        dev.lora4j.DType out = base.dtype();
        try (base; Tensor lora = loraForward(input, b)) { // base closed however this ends
            return restoreType(base.add(lora), out);
        }
    }

    @Override
    protected final Tensor deltaWeight(DType dtype, String name) {
        int b = rank;
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor a = loraA().narrow(0, 0, b).to(dtype);
            Tensor w = loraB().narrow(1, 0, b).to(dtype);
            return deltaWith(a, w).mul(scaling()).contiguous().keep();
        }
    }

    /**
     * The rows of A (and columns of B) that an optimizer step at the current rank must leave
     * alone in strict mode: every row but b-1 in frozen mode, rows b.. in nested mode.
     */
    boolean[] inactiveRows() {
        boolean[] inactive = new boolean[rMax()];
        for (int i = 0; i < inactive.length; i++) {
            inactive[i] = mode == Mode.FROZEN ? i != rank - 1 : i >= rank;
        }
        return inactive;
    }

    // ------------------------------------------------------------------ changing the rank range

    /** Keeps the first {@code newRMax} ranks and drops the rest (ΔW at ranks ≤ newRMax unchanged). */
    public void truncateRank(int newRMax) {
        withAdapterLock(true, () -> {
            truncateRankLocked(newRMax);
            return null;
        });
    }

    private void truncateRankLocked(int newRMax) {
        int r = rMax();
        if (newRMax < 1 || newRMax > r) throw new IllegalArgumentException("truncateRank needs 1.." + r + ", got " + newRMax);
        changeFactors(a -> a.narrow(0, 0, newRMax).clone(), w -> w.narrow(1, 0, newRMax).clone());
        if (rank > newRMax) rank = newRMax;
    }

    /**
     * Grows r_max to {@code newRMax}: the new columns of B are zeros and the new rows of A are
     * drawn as the config's init draws A, so ΔW at every old rank is unchanged and the new
     * ranks can train.
     */
    public void padRank(int newRMax) {
        withAdapterLock(true, () -> {
            padRankLocked(newRMax);
            return null;
        });
    }

    private void padRankLocked(int newRMax) {
        int r = rMax();
        if (newRMax < r) throw new IllegalArgumentException("padRank needs a rank >= " + r + ", got " + newRMax + " (use truncateRank)");
        if (newRMax == r) return;
        changeFactors(a -> {
            long[] shape = a.shape();
            shape[0] = newRMax - r;
            Tensor extra = initA(Tensor.empty(a.dtype(), shape), newRMax);
            return Tensor.cat(List.of(a, extra), 0);
        }, w -> {
            long[] shape = w.shape();
            shape[1] = newRMax - r;
            return Tensor.cat(List.of(w, Tensor.zeros(w.dtype(), shape)), 1);
        });
    }

    /**
     * The seed's {@code adjust_rank_and_alpha}: new factors of rank {@code newRMax}, freshly
     * initialised (B zeros, so ΔW = 0), and α = {@code newAlpha}. Everything learned is lost.
     */
    public void reinitialize(int newRMax, double newAlpha) {
        withAdapterLock(true, () -> {
            reinitializeLocked(newRMax, newAlpha);
            return null;
        });
    }

    private void reinitializeLocked(int newRMax, double newAlpha) {
        if (newRMax < 1) throw new IllegalArgumentException("rank must be >= 1, got " + newRMax);
        if (!(newAlpha > 0) || Double.isInfinite(newAlpha)) throw new IllegalArgumentException("alpha must be > 0, got " + newAlpha);
        changeFactors(a -> {
            long[] shape = a.shape();
            shape[0] = newRMax;
            return initA(Tensor.empty(a.dtype(), shape), newRMax);
        }, w -> {
            long[] shape = w.shape();
            shape[1] = newRMax;
            return Tensor.zeros(w.dtype(), shape);
        });
        rank = newRMax;
        setAlpha(newAlpha);
    }

    /** Draws A's rows as the config's init does, for an adapter of rank {@code r}; returns a. */
    protected final Tensor initA(Tensor a, int r) {
        try (var ng = Torch.noGrad()) {
            switch (config().init()) {
                case DEFAULT -> Init.kaimingUniform_(a, Math.sqrt(5));
                case GAUSSIAN -> Init.normal_(a, 0, 1.0 / r);
                case NORMAL -> Init.normal_(a, 0, 1);
            }
        }
        return a;
    }

    private void changeFactors(java.util.function.UnaryOperator<Tensor> fa, java.util.function.UnaryOperator<Tensor> fb) {
        ensureOpen();
        if (isMerged()) throw new IllegalStateException("unmerge before changing the rank range");
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor a = fa.apply(loraA()).contiguous().keep();
            Tensor b = fb.apply(loraB()).contiguous().keep();
            setFactors(a, b);
        }
    }

    @Override
    protected String extraRepr() {
        return "r_max=" + rMax() + ", rank=" + rank + ", lora_alpha=" + alpha + ", mode=" + mode + (isMerged() ? ", merged" : "");
    }
}
