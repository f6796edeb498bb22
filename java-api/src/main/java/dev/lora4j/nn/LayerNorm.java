package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Arrays;

/**
 * Layer normalisation over the last dimensions, as {@code nn.LayerNorm}: weight (ones) and
 * bias (zeros) of shape {@code normalizedShape} when {@code elementwiseAffine}, eps 1e-5 by
 * default. The parameters are {@code weight} and {@code bias}, as PyTorch names them.
 *
 * <p>Ownership and threads: as every {@link Module}: it owns its parameters and frees them on
 * close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LayerNorm extends Module {

    private final long[] normalizedShape;
    private final double eps;

    public LayerNorm(long normalizedShape) {
        this(new long[] {normalizedShape}, 1e-5, true);
    }

    public LayerNorm(long normalizedShape, double eps) {
        this(new long[] {normalizedShape}, eps, true);
    }

    public LayerNorm(long[] normalizedShape, double eps, boolean elementwiseAffine) {
        if (normalizedShape == null || normalizedShape.length == 0) {
            throw new IllegalArgumentException("LayerNorm needs a non-empty normalizedShape");
        }
        for (long s : normalizedShape) {
            if (s < 1) throw new IllegalArgumentException("LayerNorm: normalizedShape sizes must be >= 1, got "
                    + Arrays.toString(normalizedShape));
        }
        if (!(eps > 0)) throw new IllegalArgumentException("LayerNorm: eps must be > 0, got " + eps);
        this.normalizedShape = normalizedShape.clone();
        this.eps = eps;
        registerParameter("weight", elementwiseAffine ? Tensor.ones(normalizedShape).requiresGrad_(true) : null);
        registerParameter("bias", elementwiseAffine ? Tensor.zeros(normalizedShape).requiresGrad_(true) : null);
    }

    public long[] normalizedShape() {
        return normalizedShape.clone();
    }

    public double eps() {
        return eps;
    }

    @Override
    public Tensor forward(Tensor input) {
        return Functional.layerNorm(input, normalizedShape, parameter("weight"), parameter("bias"), eps);
    }

    @Override
    protected String extraRepr() {
        return "(" + Arrays.toString(normalizedShape).replace("[", "").replace("]", "") + ",), eps=" + eps
                + ", elementwise_affine=" + (parameter("weight") != null ? "True" : "False");
    }
}
