package dev.lora4j.optim;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Gradient clipping, as PyTorch's {@code torch.nn.utils.clip_grad_norm_}.
 *
 * <p>Ownership: reads and scales the parameters' gradients in place; keeps no reference.
 * Thread-safety: call it on the training thread, between {@code backward} and
 * {@link Optimizer#step()}, like the rest of a training step. Stateless.
 */
public final class GradClip {

    private GradClip() {}

    /** {@link #clipGradNorm_(List, double, double)} with the 2-norm. */
    public static double clipGradNorm_(List<Tensor> params, double maxNorm) {
        return clipGradNorm_(params, maxNorm, 2.0, false);
    }

    /** {@link #clipGradNorm_(List, double, double, boolean)} with PyTorch's default {@code error_if_nonfinite=False}. */
    public static double clipGradNorm_(List<Tensor> params, double maxNorm, double normType) {
        return clipGradNorm_(params, maxNorm, normType, false);
    }

    /**
     * Scales the gradients of {@code params} in place so that their total norm (the
     * {@code normType}-norm of all gradients together, as if concatenated) is at most
     * {@code maxNorm}: each is multiplied by {@code min(1, maxNorm / (total + 1e-6))}.
     * Parameters without a gradient are skipped. The norm is accumulated in float64.
     *
     * <p>As PyTorch with {@code error_if_nonfinite=False}, a non-finite total norm is not an
     * error: an infinite one scales every gradient by 0 (so infinite entries become NaN), a NaN
     * one makes every gradient NaN. With {@code errorIfNonfinite} it throws instead, before any
     * gradient changes.
     *
     * @param normType a positive norm order, or {@link Double#POSITIVE_INFINITY} for the max-norm
     * @return the total norm of the gradients before clipping (0 when there are none)
     * @throws IllegalArgumentException for a negative or NaN {@code maxNorm}, or a {@code normType}
     *     that is not positive
     * @throws IllegalStateException when {@code errorIfNonfinite} and the total norm is not finite
     */
    public static double clipGradNorm_(List<Tensor> params, double maxNorm, double normType, boolean errorIfNonfinite) {
        Objects.requireNonNull(params, "params");
        if (!(maxNorm >= 0)) throw new IllegalArgumentException("maxNorm must be >= 0, got " + maxNorm);
        if (!(normType > 0)) throw new IllegalArgumentException("normType must be > 0 or +inf, got " + normType);
        List<Tensor> grads = new ArrayList<>();
        try (var ng = Torch.noGrad()) {
            for (int i = 0; i < params.size(); i++) {
                Tensor g = Objects.requireNonNull(params.get(i), "params[" + i + "]").grad();
                if (g != null) grads.add(g);
            }
            double total = totalNorm(grads, normType);
            if (errorIfNonfinite && !Double.isFinite(total)) {
                throw new IllegalStateException("the total norm of order " + normType + " of the gradients is " + total
                        + ", so it cannot be clipped (errorIfNonfinite)");
            }
            double coef = maxNorm / (total + 1e-6);
            if (!(coef >= 1.0)) { // clamp(max=1), NaN included as in PyTorch
                for (Tensor g : grads) g.mul_(coef);
            }
            return total;
        } finally {
            grads.forEach(Tensor::close);
        }
    }

    /** The norm of all gradients together, in float64: (Σ Σ |g|^p)^(1/p), or max |g| for p = ∞. */
    static double totalNorm(List<Tensor> grads, double p) {
        boolean inf = p == Double.POSITIVE_INFINITY;
        double acc = 0;
        for (Tensor g : grads) {
            if (g.numel() == 0) continue;
            try (Tensor d = g.to(DType.FLOAT64); Tensor a = d.abs()) {
                if (inf) {
                    try (Tensor m = a.max()) {
                        double v = m.item();
                        acc = Double.isNaN(v) || Double.isNaN(acc) ? Double.NaN : Math.max(acc, v);
                    }
                } else {
                    try (Tensor pw = p == 1 ? null : a.pow(p); Tensor s = (pw == null ? a : pw).sum()) {
                        acc += s.item();
                    }
                }
            }
        }
        return inf || p == 1 ? acc : Math.pow(acc, 1.0 / p);
    }
}
