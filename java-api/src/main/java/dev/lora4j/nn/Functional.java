package dev.lora4j.nn;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.DType;
import dev.lora4j.Reduction;
import dev.lora4j.Tensor;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.PerThread;
import java.util.Arrays;
import java.util.Objects;

/**
 * Stateless neural-network operations, as PyTorch's {@code torch.nn.functional}
 * ({@code F.linear}, {@code F.conv2d}, {@code F.cross_entropy}, ...). Results follow the usual
 * {@link Tensor} ownership rules. Thread-safe.
 */
public final class Functional {

    private Functional() {}

    /** {@code input·weightᵀ + bias}; {@code bias} may be null. */
    public static Tensor linear(Tensor input, Tensor weight, Tensor bias) {
        Objects.requireNonNull(input, "input");
        Objects.requireNonNull(weight, "weight");
        if (weight.dim() != 2) {
            throw new IllegalArgumentException("linear: weight must be 2-dimensional (out, in), got shape "
                    + Arrays.toString(weight.shape()));
        }
        if (input.dim() == 0 || input.size(-1) != weight.size(1)) {
            throw new IllegalArgumentException("linear: input's last dimension must be weight's in_features "
                    + weight.size(1) + ", got input shape " + Arrays.toString(input.shape()));
        }
        if (bias != null && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
            throw new IllegalArgumentException("linear: bias must have shape [" + weight.size(0) + "], got "
                    + Arrays.toString(bias.shape()));
        }
        return Calls.call("linear", input, weight, bias, (x, w, b, o) -> lt_linear(x, w, b, o));
    }

    public static Tensor conv1d(Tensor input, Tensor weight, Tensor bias, long stride, long padding,
                                long dilation, long groups) {
        return conv(1, input, weight, bias, fill(1, stride), fill(1, padding), fill(1, dilation), groups);
    }

    public static Tensor conv1d(Tensor input, Tensor weight, Tensor bias) {
        return conv1d(input, weight, bias, 1, 0, 1, 1);
    }

    /** 2-d convolution with the same stride, padding and dilation in both dimensions. */
    public static Tensor conv2d(Tensor input, Tensor weight, Tensor bias, long stride, long padding,
                                long dilation, long groups) {
        return conv(2, input, weight, bias, fill(2, stride), fill(2, padding), fill(2, dilation), groups);
    }

    public static Tensor conv2d(Tensor input, Tensor weight, Tensor bias) {
        return conv2d(input, weight, bias, 1, 0, 1, 1);
    }

    public static Tensor conv3d(Tensor input, Tensor weight, Tensor bias, long stride, long padding,
                                long dilation, long groups) {
        return conv(3, input, weight, bias, fill(3, stride), fill(3, padding), fill(3, dilation), groups);
    }

    public static Tensor conv3d(Tensor input, Tensor weight, Tensor bias) {
        return conv3d(input, weight, bias, 1, 0, 1, 1);
    }

    /**
     * Convolution over {@code spatialDims} (1, 2 or 3) dimensions with per-dimension stride,
     * padding and dilation; {@code bias} may be null.
     */
    public static Tensor conv(int spatialDims, Tensor input, Tensor weight, Tensor bias, long[] stride,
                              long[] padding, long[] dilation, long groups) {
        Objects.requireNonNull(input, "input");
        Objects.requireNonNull(weight, "weight");
        if (spatialDims < 1 || spatialDims > 3) {
            throw new IllegalArgumentException("spatialDims must be 1, 2 or 3, got " + spatialDims);
        }
        String op = "conv" + spatialDims + "d";
        checkLength(op, "stride", stride, spatialDims, 1);
        checkLength(op, "padding", padding, spatialDims, 0);
        checkLength(op, "dilation", dilation, spatialDims, 1);
        checkGroups(op, groups);
        if (weight.dim() != spatialDims + 2) {
            throw new IllegalArgumentException(op + ": weight must have " + (spatialDims + 2)
                    + " dimensions (out, in/groups, kernel...), got shape " + Arrays.toString(weight.shape()));
        }
        int rank = input.dim();
        if (rank != spatialDims + 2 && rank != spatialDims + 1) {
            throw new IllegalArgumentException(op + ": input must have " + (spatialDims + 2) + " dimensions (batch, channels, ...) or "
                    + (spatialDims + 1) + " without batch, got shape " + Arrays.toString(input.shape()));
        }
        return Calls.call(op, input, weight, bias, (x, w, b, o) -> {
            PerThread t = PerThread.get();
            return lt_conv(x, w, b, spatialDims, t.longs(0, stride), t.longs(1, padding), t.longs(2, dilation), groups, o);
        });
    }

    private static long[] fill(int n, long v) {
        long[] a = new long[n];
        Arrays.fill(a, v);
        return a;
    }

    /**
     * Checks a convolution's per-dimension argument: {@code n} values in {@code min..}{@link
     * Integer#MAX_VALUE} (LibTorch's convolution kernels hold some of them in 32-bit ints).
     */
    static void checkLength(String op, String name, long[] values, int n, long min) {
        Objects.requireNonNull(values, name);
        if (values.length != n) {
            throw new IllegalArgumentException(op + ": " + name + " needs " + n + " values, got " + values.length);
        }
        for (long v : values) {
            if (v < min || v > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(op + ": " + name + " must be in " + min + ".." + Integer.MAX_VALUE + ", got "
                        + Arrays.toString(values));
            }
        }
    }

    /**
     * Checks a convolution's {@code groups}: LibTorch narrows it to a 32-bit int (2^32 would
     * become 0 and divide by zero, 2^32 + 1 would silently become 1).
     */
    static void checkGroups(String op, long groups) {
        if (groups < 1 || groups > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": groups must be in 1.." + Integer.MAX_VALUE + ", got " + groups);
        }
    }

    /** Rows of {@code weight} at {@code indices} (int64 or int32), as {@code F.embedding(input, weight)}. */
    public static Tensor embedding(Tensor indices, Tensor weight) {
        return embedding(indices, weight, -1);
    }

    /**
     * As {@code F.embedding(input, weight, padding_idx)}: the row at {@code paddingIdx}
     * receives no gradient; -1 means none (negative values count from the end as in PyTorch,
     * except -1 itself).
     */
    public static Tensor embedding(Tensor indices, Tensor weight, long paddingIdx) {
        Objects.requireNonNull(indices, "indices");
        Objects.requireNonNull(weight, "weight");
        if (weight.dim() != 2) {
            throw new IllegalArgumentException("embedding: weight must be 2-dimensional (num_embeddings, dim), got shape "
                    + Arrays.toString(weight.shape()));
        }
        if (indices.dtype() != DType.INT64 && indices.dtype() != DType.INT32) {
            throw new IllegalArgumentException("embedding: indices must be int64 or int32, got " + indices.dtype());
        }
        long n = weight.size(0);
        long p = paddingIndex(paddingIdx, n);
        return Calls.call("embedding", weight, indices, (w, i, o) -> lt_embedding(w, i, p, o));
    }

    /**
     * The padding row for {@code paddingIdx} among {@code n} embeddings: -1 means none, other
     * negative values count from the end; anything outside -n..n-1 is refused.
     */
    static long paddingIndex(long paddingIdx, long n) {
        if (paddingIdx < -n && paddingIdx != -1 || paddingIdx >= n) {
            throw new IndexOutOfBoundsException("paddingIdx " + paddingIdx + " is out of range for " + n + " embeddings");
        }
        return paddingIdx < -1 ? paddingIdx + n : paddingIdx;
    }

    /** Zeroes elements with probability {@code p} and scales the rest by 1/(1-p) when training. */
    public static Tensor dropout(Tensor input, double p, boolean training) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1], got " + p);
        return Calls.call("dropout", input, (x, o) -> lt_dropout(x, p, training ? 1 : 0, o));
    }

    public static Tensor relu(Tensor input) {
        return input.relu();
    }

    public static Tensor gelu(Tensor input) {
        return input.gelu();
    }

    public static Tensor sigmoid(Tensor input) {
        return input.sigmoid();
    }

    public static Tensor tanh(Tensor input) {
        return input.tanh();
    }

    public static Tensor softmax(Tensor input, int dim) {
        return input.softmax(dim);
    }

    public static Tensor logSoftmax(Tensor input, int dim) {
        return input.logSoftmax(dim);
    }

    /** Mean cross-entropy of logits {@code input} (N, C) against class indices {@code target} (N). */
    public static Tensor crossEntropy(Tensor input, Tensor target) {
        return crossEntropy(input, target, null, Reduction.MEAN, -100, 0.0);
    }

    /**
     * As {@code F.cross_entropy}: {@code target} holds class indices (int64); {@code weight}
     * (per class) may be null; targets equal to {@code ignoreIndex} do not count.
     */
    public static Tensor crossEntropy(Tensor input, Tensor target, Tensor weight, Reduction reduction,
                                      long ignoreIndex, double labelSmoothing) {
        checkClassificationArgs("crossEntropy", input, target, reduction);
        if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) {
            throw new IllegalArgumentException("crossEntropy: labelSmoothing must be in [0, 1], got " + labelSmoothing);
        }
        int r = reduction.ordinal();
        return Calls.call("crossEntropy", input, target, weight,
                (x, t, w, o) -> lt_cross_entropy(x, t, w, r, ignoreIndex, labelSmoothing, o));
    }

    /** Mean negative log-likelihood of log-probabilities {@code input} (N, C) at {@code target} (N). */
    public static Tensor nllLoss(Tensor input, Tensor target) {
        return nllLoss(input, target, null, Reduction.MEAN, -100);
    }

    public static Tensor nllLoss(Tensor input, Tensor target, Tensor weight, Reduction reduction, long ignoreIndex) {
        checkClassificationArgs("nllLoss", input, target, reduction);
        int r = reduction.ordinal();
        return Calls.call("nllLoss", input, target, weight, (x, t, w, o) -> lt_nll_loss(x, t, w, r, ignoreIndex, o));
    }

    private static void checkClassificationArgs(String op, Tensor input, Tensor target, Reduction reduction) {
        Objects.requireNonNull(input, "input");
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(reduction, "reduction");
        if (target.dtype() != DType.INT64) {
            throw new IllegalArgumentException(op + ": target must hold int64 class indices, got " + target.dtype());
        }
        if (input.dim() < 1 || input.dim() != target.dim() + 1 && input.dim() != 1) {
            throw new IllegalArgumentException(op + ": input " + Arrays.toString(input.shape())
                    + " and target " + Arrays.toString(target.shape()) + " do not match (expected (N, C) and (N))");
        }
    }

    /** Mean squared error. */
    public static Tensor mseLoss(Tensor input, Tensor target) {
        return mseLoss(input, target, Reduction.MEAN);
    }

    public static Tensor mseLoss(Tensor input, Tensor target, Reduction reduction) {
        Objects.requireNonNull(input, "input");
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(reduction, "reduction");
        if (!Arrays.equals(input.shape(), target.shape())) {
            throw new IllegalArgumentException("mseLoss: input " + Arrays.toString(input.shape())
                    + " and target " + Arrays.toString(target.shape()) + " must have the same shape");
        }
        int r = reduction.ordinal();
        return Calls.call("mseLoss", input, target, (x, t, o) -> lt_mse_loss(x, t, r, o));
    }
}
