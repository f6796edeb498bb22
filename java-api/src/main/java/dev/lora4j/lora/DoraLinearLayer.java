package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Module;

/**
 * DoRA's magnitude for one adapter of a {@link LoraLinear} (Liu et al. 2024; PEFT's
 * {@code DoraLinearLayer}): parameter {@code weight}, one value per output feature, held under
 * {@code lora_magnitude_vector.<adapter>.weight} as PEFT holds it (PEFT's files drop the adapter
 * name and the {@code .weight}: {@code <module>.lora_magnitude_vector}).
 *
 * <p>The adapted weight is {@code W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖} with the norm taken over
 * each output row (W in (out, in) layout). The norm is treated as a constant in backward, as
 * the paper's section 4.3 and PEFT do, so only m, A and B get gradients. It is computed from
 * the factors without forming B·A: {@code ‖W_i‖² + 2s·⟨B_i, (W·Aᵀ)_i⟩ + s²·B_i·(A·Aᵀ)·B_iᵀ}.
 * Forward adds {@code (m/‖·‖ − 1)·(x·Wᵀ) + (m/‖·‖)·s·(x·Aᵀ)·Bᵀ} to the base output (x after
 * the adapter's dropout), which equals {@code x·W'ᵀ + b}. A fresh magnitude is
 * {@code ‖W + s·B·A‖}, so a new DoRA adapter leaves the output unchanged.
 *
 * <p>Merging writes W' into the base weight and remembers the norm it used, so that unmerging
 * ({@code W = W'·‖·‖/m − s·B·A}) restores W; merges and unmerges must nest (the layer unmerges
 * last merged first).
 *
 * <p>The row norm is kept between forwards while W, A, B and s stay the same (identities and
 * version counters), so a serving layer computes it once; when the adapter's output is the
 * first added to the base layer's, the base output is reused instead of computing x·Wᵀ again.
 *
 * <p>The magnitude and the row norm are in the LoRA factors' dtype ({@link LoraLayer#factorType}:
 * float32 on float16/bfloat16 bases, as PEFT's autocast_adapter_dtype); merging computes in it and
 * rounds once into the base weight.
 *
 * <p>Ownership and threads: the layer owns its parameter and the remembered norms and frees them
 * on close; used by its {@link LoraLinear} under that layer's rules (concurrent eval forwards
 * share the kept norm safely; changes run under the model's {@link AdapterLock}).
 */
public final class DoraLinearLayer extends Module {

    /** The norm of each row of W + ΔW at the last merge, for unmerge; null when not merged. */
    private Tensor mergedNorm;

    /** ‖W + s·B·A‖ of the last forward and what it was computed from; guarded by {@code this}. */
    private Tensor cachedNorm;
    private long[] cachedStamp;

    /** A magnitude holding a copy of {@code magnitude} (shape (out)) in {@code dtype} (the LoRA factors'), trainable. */
    DoraLinearLayer(Tensor magnitude, DType dtype) {
        Tensor m;
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            m = magnitude.detach().to(dtype).clone().keep();
        }
        registerParameter("weight", m.requiresGrad_(true));
    }

    /** The magnitude m, shape (out). */
    public Tensor weight() {
        return parameter("weight");
    }

    /** @throws UnsupportedOperationException always: it is used through its {@link LoraLinear} */
    @Override
    public Tensor forward(Tensor input) {
        throw new UnsupportedOperationException("DoraLinearLayer is applied by its LoraLinear, not called on its own");
    }

    /**
     * ‖W + s·B·A‖ per output row, computed without forming B·A and without gradients.
     * {@code w} is (out, in) (a transposed view for fan_in_fan_out weights); result (out), in
     * the LoRA factors' dtype for {@code w} (float32 for float16/bfloat16, as PEFT computes it),
     * owned by the caller.
     */
    static Tensor weightNorm(Tensor w, Tensor a, Tensor b, double scale) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            DType dt = w.dtype();
            DType compute = LoraLayer.factorType(dt);
            Tensor w32 = w.to(compute);
            Tensor a32 = a.detach().to(compute);
            Tensor b32 = b.detach().to(compute);
            Tensor wNorm2 = w32.mul(w32).sum(1);
            Tensor cross = b32.mul(w32.matmul(a32.t())).sum(1);
            Tensor gram = b32.matmul(a32.matmul(a32.t())).mul(b32).sum(1);
            Tensor norm2 = wNorm2.add(cross, 2 * scale).add(gram, scale * scale);
            return norm2.relu().sqrt().keep();
        }
    }

    /**
     * This adapter's contribution to the output for {@code x} (already through the adapter's
     * dropout): {@code (m/n − 1)·(x·Wᵀ) + (m/n)·s·(x·Aᵀ)·Bᵀ} with n the detached norm.
     * {@code stored} is the base weight as stored ((in, out) with {@code fanInFanOut}). The
     * caller owns the result.
     */
    Tensor delta(Tensor x, Tensor stored, boolean fanInFanOut, Tensor a, Tensor b, double scale) {
        try (TensorScope s = TensorScope.open()) {
            Tensor w = fanInFanOut ? stored.t() : stored;
            return combine(x, Functional.linear(x, w.to(x.dtype()), null), stored, fanInFanOut, a, b, scale).keep();
        }
    }

    /**
     * {@code result} plus this adapter's contribution, where {@code result} is the base layer's
     * output x·Wᵀ + bias for this very {@code x} (no dropout, no other adapter in it), so x·Wᵀ
     * is not computed again (PEFT's {@code base_result}). The caller owns the result.
     */
    Tensor addToBase(Tensor result, Tensor bias, Tensor x, Tensor stored, boolean fanInFanOut, Tensor a, Tensor b, double scale) {
        try (TensorScope s = TensorScope.open()) {
            Tensor base = bias == null ? result : result.sub(bias);
            return result.add(combine(x, base, stored, fanInFanOut, a, b, scale)).keep();
        }
    }

    /** {@code (m/n − 1)·base + (m/n)·s·(x·Aᵀ)·Bᵀ}, with base = x·Wᵀ; in the current scope. */
    private Tensor combine(Tensor x, Tensor base, Tensor stored, boolean fanInFanOut, Tensor a, Tensor b, double scale) {
        Tensor norm = norm(stored, fanInFanOut ? stored.t() : stored, a, b, scale);
        Tensor factor = weight().div(norm);
        Tensor lora = Functional.linear(Functional.linear(x, a, null), b, null);
        return factor.sub(1).mul(base).add(factor.mul(lora).mul(scale));
    }

    /**
     * {@link #weightNorm}, kept while W, A, B and s stay the same (their identities and version
     * counters), since it changes only when they do: a serving layer computes it once. Returns a
     * new handle to it (the storage outlives a replacement by another thread).
     */
    private synchronized Tensor norm(Tensor stored, Tensor w, Tensor a, Tensor b, double scale) {
        long[] stamp = {System.identityHashCode(stored), stored.version(), System.identityHashCode(a), a.version(),
                System.identityHashCode(b), b.version(), Double.doubleToLongBits(scale)};
        if (cachedNorm == null || !java.util.Arrays.equals(stamp, cachedStamp)) {
            if (cachedNorm != null) cachedNorm.close();
            cachedNorm = null;
            Tensor n = weightNorm(w, a, b, scale);
            dev.lora4j.internal.Calls.own(n);
            cachedNorm = n;
            cachedStamp = stamp;
        }
        return cachedNorm.alias();
    }

    /**
     * Merges (sign 1) or unmerges (sign −1) into the stored weight {@code stored}; {@code delta}
     * is s·B·A in the stored layout, {@code fanInFanOut} says whether that layout is (in, out).
     *
     * @throws IllegalStateException when {@code safe} and the merged weight is not finite, or
     *     when unmerging without a merge
     */
    void apply(Tensor stored, Tensor delta, boolean fanInFanOut, double sign, boolean safe, String what) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            DType dt = stored.dtype();
            DType compute = LoraLayer.factorType(dt);
            Tensor w = stored.to(compute);
            Tensor d = delta.to(compute);
            int outDim = fanInFanOut ? 1 : 0;
            Tensor updated;
            if (sign > 0) {
                Tensor norm = mergedNorm(w, d, fanInFanOut);
                updated = mergedWeight(w, d, fanInFanOut, norm);
                if (safe && !updated.allFinite()) {
                    throw new IllegalStateException("safe merge refused: the DoRA-merged weight of " + what + " would hold NaN or infinity");
                }
                stored.copy_(updated);
                if (mergedNorm != null) mergedNorm.close();
                mergedNorm = norm.to(dt).keep();
                dev.lora4j.internal.Calls.own(mergedNorm);
            } else {
                if (mergedNorm == null) throw new IllegalStateException(what + ": DoRA adapter is not merged");
                Tensor factor = weight().detach().to(compute).div(mergedNorm.to(compute)).unsqueeze(1 - outDim);
                updated = w.div(factor).sub(d);
                stored.copy_(updated);
                mergedNorm.close();
                mergedNorm = null;
            }
        }
    }

    /** ‖w + d‖ along the output dimension (rows of (out, in), columns of (in, out)); in the caller's scope. */
    private static Tensor mergedNorm(Tensor w, Tensor d, boolean fanInFanOut) {
        Tensor sum = w.add(d);
        return sum.mul(sum).sum(fanInFanOut ? 0 : 1).sqrt();
    }

    /** m ⊙ (w + d)/{@code norm}, the factor along the output dimension; in the caller's scope. */
    private Tensor mergedWeight(Tensor w, Tensor d, boolean fanInFanOut, Tensor norm) {
        Tensor factor = weight().detach().to(w.dtype()).div(norm).unsqueeze(fanInFanOut ? 0 : 1);
        return w.add(d).mul(factor);
    }

    /** The weight merging writes for stored weight {@code w} and ΔW {@code d} (stored layout, one dtype); in the caller's scope. */
    Tensor mergedWeight(Tensor w, Tensor d, boolean fanInFanOut) {
        return mergedWeight(w, d, fanInFanOut, mergedNorm(w, d, fanInFanOut));
    }

    @Override
    public void close() {
        if (mergedNorm != null) mergedNorm.close();
        mergedNorm = null;
        synchronized (this) {
            if (cachedNorm != null) cachedNorm.close();
            cachedNorm = null;
        }
        super.close();
    }
}
