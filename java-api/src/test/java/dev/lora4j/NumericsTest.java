package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.nn.Functional;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Forward numerics of lora4j checked against independent plain-Java references (double loops)
 * and closed forms: matmul (2-D, and a batched 3-D × 2-D broadcast), linear with and without
 * bias, conv2d with stride, padding, dilation and groups (naive 7-loop reference), embedding
 * (padding_idx leaves the forward unchanged), softmax and log_softmax (over a middle and a
 * last dimension, with large logits), cross-entropy, sums and means of arange, and mseLoss.
 *
 * <p>Inputs come from a seeded {@link Random}, so the references never see library-generated
 * data. FLOAT64 results must match to {@value #F64_TOL} (relative, with the same absolute
 * floor); FLOAT32 results to {@value #F32_TOL}, computed by the reference in double from the
 * same float-rounded inputs.
 */
@ExtendWith(ScopePerTest.class)
class NumericsTest {

    private static final double F64_TOL = 1e-12;
    private static final double F32_TOL = 1e-5;

    private final Random rnd = new Random(20240611);

    // ------------------------------------------------------------------ matmul and linear

    @Test
    void matmulOfMatricesMatchesReference() {
        int n = 5, k = 7, m = 3;
        double[] a = gaussian(n * k);
        double[] b = gaussian(k * m);
        double[] expected = matmulRef(a, b, n, k, m);

        Tensor ta = Tensor.of(a, n, k);
        Tensor tb = Tensor.of(b, k, m);
        Tensor c = ta.matmul(tb);
        assertArrayEquals(new long[] {n, m}, c.shape());
        assertAllClose("matmul f64", expected, c.toDoubleArray(), F64_TOL);
        assertAllClose("mm f64", expected, ta.mm(tb).toDoubleArray(), F64_TOL);
        // A transposed (non-contiguous) right operand gives the same product.
        Tensor bT = Tensor.of(transposeRef(b, k, m), m, k);
        assertAllClose("mm with t()", expected, ta.mm(bT.t()).toDoubleArray(), F64_TOL);

        float[] af = toFloats(a), bf = toFloats(b);
        double[] expected32 = matmulRef(toDoubles(af), toDoubles(bf), n, k, m);
        Tensor c32 = Tensor.of(af, n, k).matmul(Tensor.of(bf, k, m));
        assertEquals(DType.FLOAT32, c32.dtype());
        assertAllClose("matmul f32", expected32, c32.toDoubleArray(), F32_TOL);
    }

    @Test
    void batchedMatmulBroadcastsTheMatrixOverTheBatch() {
        int batch = 3, n = 4, k = 5, m = 2;
        double[] x = gaussian(batch * n * k);
        double[] w = gaussian(k * m);
        double[] expected = new double[batch * n * m];
        for (int i = 0; i < batch; i++) {
            double[] xi = new double[n * k];
            System.arraycopy(x, i * n * k, xi, 0, n * k);
            System.arraycopy(matmulRef(xi, w, n, k, m), 0, expected, i * n * m, n * m);
        }

        Tensor y = Tensor.of(x, batch, n, k).matmul(Tensor.of(w, k, m));
        assertArrayEquals(new long[] {batch, n, m}, y.shape());
        assertAllClose("batched matmul", expected, y.toDoubleArray(), F64_TOL);
    }

    @Test
    void linearWithAndWithoutBiasMatchesReference() {
        int n = 4, in = 6, out = 3;
        float[] x = toFloats(gaussian(n * in));
        float[] w = toFloats(gaussian(out * in));
        float[] b = toFloats(gaussian(out));
        Tensor tx = Tensor.of(x, n, in);
        Tensor tw = Tensor.of(w, out, in);

        double[] noBias = linearRef(toDoubles(x), toDoubles(w), null, n, in, out);
        Tensor y0 = Functional.linear(tx, tw, null);
        assertArrayEquals(new long[] {n, out}, y0.shape());
        assertAllClose("linear without bias", noBias, y0.toDoubleArray(), F32_TOL);

        double[] withBias = linearRef(toDoubles(x), toDoubles(w), toDoubles(b), n, in, out);
        Tensor y1 = Functional.linear(tx, tw, Tensor.of(b, out));
        assertAllClose("linear with bias", withBias, y1.toDoubleArray(), F32_TOL);
    }

    // ------------------------------------------------------------------ conv2d

    @Test
    void conv2dWithStridePaddingDilationAndGroupsMatchesNaiveLoops() {
        ConvSpec spec = new ConvSpec(2, 4, 6, 7, 8, 3, 3, new int[] {2, 2}, new int[] {1, 1}, new int[] {2, 2}, 2);
        double[] x = gaussian(spec.inputSize());
        double[] w = gaussian(spec.weightSize());
        double[] b = gaussian(spec.outChannels());
        Tensor tx = Tensor.of(x, spec.inputShape());
        Tensor tw = Tensor.of(w, spec.weightShape());

        Tensor y = Functional.conv2d(tx, tw, Tensor.of(b, spec.outChannels()), 2, 1, 2, 2);
        assertArrayEquals(spec.outputShape(), y.shape());
        assertArrayEquals(new long[] {2, 6, 3, 3}, y.shape(), "(7 + 2 - 4 - 1) / 2 + 1 = 3, (8 + 2 - 4 - 1) / 2 + 1 = 3");
        assertAllClose("conv2d with bias", conv2dRef(spec, x, w, b), y.toDoubleArray(), F64_TOL);

        Tensor y0 = Functional.conv2d(tx, tw, null, 2, 1, 2, 2);
        assertAllClose("conv2d without bias", conv2dRef(spec, x, w, null), y0.toDoubleArray(), F64_TOL);
    }

    @Test
    void convWithPerDimensionStridePaddingAndDilationMatchesNaiveLoops() {
        // Different settings per spatial dimension, so a swapped height/width would show.
        ConvSpec spec = new ConvSpec(2, 4, 6, 7, 8, 3, 2, new int[] {1, 2}, new int[] {2, 0}, new int[] {1, 3}, 2);
        double[] x = gaussian(spec.inputSize());
        double[] w = gaussian(spec.weightSize());
        Tensor y = Functional.conv(2, Tensor.of(x, spec.inputShape()), Tensor.of(w, spec.weightShape()), null,
                new long[] {1, 2}, new long[] {2, 0}, new long[] {1, 3}, 2);
        assertArrayEquals(spec.outputShape(), y.shape());
        assertAllClose("conv with arrays", conv2dRef(spec, x, w, null), y.toDoubleArray(), F64_TOL);
    }

    // ------------------------------------------------------------------ embedding

    @Test
    void embeddingGathersRowsAndPaddingIdxDoesNotChangeTheForward() {
        int rows = 6, dim = 3;
        float[] weight = toFloats(gaussian(rows * dim));
        long[] indices = {0, 2, 5, 2, 2, 1};
        Tensor tw = Tensor.of(weight, rows, dim);
        Tensor ti = Tensor.of(indices, 2, 3);

        float[] expected = new float[indices.length * dim];
        for (int p = 0; p < indices.length; p++) {
            System.arraycopy(weight, (int) indices[p] * dim, expected, p * dim, dim);
        }

        Tensor plain = Functional.embedding(ti, tw);
        assertArrayEquals(new long[] {2, 3, dim}, plain.shape());
        assertArrayEquals(expected, plain.toFloatArray(), "rows are copied exactly");

        // Row 2 is the padding row and is looked up: F.embedding still returns it as is.
        Tensor padded = Functional.embedding(ti, tw, 2);
        assertArrayEquals(expected, padded.toFloatArray(), "padding_idx only affects the gradient");

        int[] indices32 = {0, 2, 5, 2, 2, 1};
        assertArrayEquals(expected, Functional.embedding(Tensor.of(indices32, 2, 3), tw).toFloatArray(), "int32 indices");
    }

    // ------------------------------------------------------------------ softmax and cross-entropy

    @Test
    void softmaxAndLogSoftmaxOverAMiddleDimensionMatchReference() {
        long[] shape = {2, 5, 3};
        double[] x = gaussian(30);
        Tensor t = Tensor.of(x, shape);
        assertAllClose("softmax dim 1", softmaxRef(x, shape, 1, false), t.softmax(1).toDoubleArray(), F64_TOL);
        assertAllClose("log_softmax dim 1", softmaxRef(x, shape, 1, true), t.logSoftmax(1).toDoubleArray(), F64_TOL);
        // Over dim 1 every (i, ·, k) fibre sums to one.
        assertAllClose("fibres sum to 1", filled(6, 1.0), t.softmax(1).sum(1).toDoubleArray(), F64_TOL);
    }

    @Test
    void softmaxAndLogSoftmaxOfLargeLogitsMatchReference() {
        long[] shape = {4, 6};
        double[] x = gaussian(24);
        for (int j = 0; j < 6; j++) {
            x[6 + j] = 800 + 3 * x[6 + j]; // would overflow exp() if not shifted by the max
            x[12 + j] = -800 + 3 * x[12 + j];
        }
        Tensor t = Tensor.of(x, shape);
        Tensor p = t.softmax(1);
        Tensor logp = t.logSoftmax(-1);
        assertTrue(p.allFinite() && logp.allFinite());
        assertAllClose("softmax dim 1", softmaxRef(x, shape, 1, false), p.toDoubleArray(), F64_TOL);
        assertAllClose("log_softmax dim -1", softmaxRef(x, shape, 1, true), logp.toDoubleArray(), F64_TOL);

        float[] xf = toFloats(x);
        double[] expected32 = softmaxRef(toDoubles(xf), shape, 1, false);
        assertAllClose("softmax f32", expected32, Tensor.of(xf, shape).softmax(1).toDoubleArray(), F32_TOL);
    }

    @Test
    void crossEntropyIsTheMeanNegativeLogSoftmaxAtTheTarget() {
        int n = 5, c = 4;
        double[] logits = gaussian(n * c);
        long[] target = {3, 0, 1, 3, 2};
        double[] logp = softmaxRef(logits, new long[] {n, c}, 1, true);
        double[] perSample = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            perSample[i] = -logp[i * c + (int) target[i]];
            sum += perSample[i];
        }

        Tensor x = Tensor.of(logits, n, c);
        Tensor t = Tensor.of(target, n);
        Tensor loss = Functional.crossEntropy(x, t);
        assertEquals(0, loss.dim());
        assertEquals(sum / n, loss.item(), F64_TOL);
        assertEquals(sum, Functional.crossEntropy(x, t, null, Reduction.SUM, -100, 0).item(), F64_TOL);
        assertAllClose("reduction none", perSample,
                Functional.crossEntropy(x, t, null, Reduction.NONE, -100, 0).toDoubleArray(), F64_TOL);
    }

    // ------------------------------------------------------------------ closed forms

    @Test
    void sumAndMeanOfArangeHaveClosedForms() {
        Tensor r = Tensor.arange(0, 100, 1, DType.FLOAT64);
        assertEquals(4950.0, r.sum().item()); // n(n-1)/2, exact in double
        assertEquals(49.5, r.mean().item());
        assertEquals(4950L, Tensor.arange(100).sum().itemLong());

        // 0..11 as a 3×4 matrix: column sums 12 + 3j, row sums 6 + 16i, row means 1.5 + 4i.
        Tensor m = Tensor.arange(0, 12, 1, DType.FLOAT64).reshape(3, 4);
        assertArrayEquals(new double[] {12, 15, 18, 21}, m.sum(0).toDoubleArray());
        assertArrayEquals(new double[] {6, 22, 38}, m.sum(1).toDoubleArray());
        assertArrayEquals(new double[] {1.5, 5.5, 9.5}, m.mean(1).toDoubleArray());
        assertArrayEquals(new double[] {6, 22, 38}, m.sum(new int[] {1}, true).toDoubleArray());
        assertArrayEquals(new long[] {3, 1}, m.sum(new int[] {1}, true).shape());
    }

    @Test
    void mseLossOfKnownVectors() {
        // Differences -1, 0, 2, -4: squares 1, 0, 4, 16, sum 21, mean 5.25.
        Tensor input = Tensor.of(new float[] {1, 2, 3, 4}, 4);
        Tensor target = Tensor.of(new float[] {2, 2, 1, 8}, 4);
        assertEquals(5.25, Functional.mseLoss(input, target).item());
        assertEquals(21.0, Functional.mseLoss(input, target, Reduction.SUM).item());
        assertArrayEquals(new float[] {1, 0, 4, 16}, Functional.mseLoss(input, target, Reduction.NONE).toFloatArray());
        assertEquals(0.0, Functional.mseLoss(input, input).item());
    }

    // ------------------------------------------------------------------ references

    /** C = A·B for row-major A (n×k) and B (k×m). */
    static double[] matmulRef(double[] a, double[] b, int n, int k, int m) {
        double[] c = new double[n * m];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < m; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += a[i * k + p] * b[p * m + j];
                c[i * m + j] = s;
            }
        }
        return c;
    }

    static double[] transposeRef(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
        }
        return t;
    }

    /** y = x·Wᵀ + b for x (n×in), W (out×in), b (out) or null. */
    static double[] linearRef(double[] x, double[] w, double[] b, int n, int in, int out) {
        double[] y = matmulRef(x, transposeRef(w, out, in), n, in, out);
        if (b != null) {
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < out; j++) y[i * out + j] += b[j];
            }
        }
        return y;
    }

    /** Shapes and settings of a grouped 2-d convolution; index 0 is height, 1 width. */
    record ConvSpec(int batch, int inChannels, int outChannels, int height, int width, int kernelH, int kernelW,
                    int[] stride, int[] padding, int[] dilation, int groups) {

        int outHeight() {
            return outSize(height, kernelH, 0);
        }

        int outWidth() {
            return outSize(width, kernelW, 1);
        }

        private int outSize(int in, int kernel, int d) {
            return (in + 2 * padding[d] - dilation[d] * (kernel - 1) - 1) / stride[d] + 1;
        }

        long[] inputShape() {
            return new long[] {batch, inChannels, height, width};
        }

        long[] weightShape() {
            return new long[] {outChannels, inChannels / groups, kernelH, kernelW};
        }

        long[] outputShape() {
            return new long[] {batch, outChannels, outHeight(), outWidth()};
        }

        int inputSize() {
            return batch * inChannels * height * width;
        }

        int weightSize() {
            return outChannels * (inChannels / groups) * kernelH * kernelW;
        }
    }

    /** The textbook grouped convolution (cross-correlation, zero padding), NCHW, bias may be null. */
    static double[] conv2dRef(ConvSpec s, double[] x, double[] w, double[] bias) {
        int oh = s.outHeight(), ow = s.outWidth();
        int inPerGroup = s.inChannels() / s.groups(), outPerGroup = s.outChannels() / s.groups();
        double[] y = new double[s.batch() * s.outChannels() * oh * ow];
        for (int n = 0; n < s.batch(); n++) {
            for (int o = 0; o < s.outChannels(); o++) {
                int group = o / outPerGroup;
                for (int oy = 0; oy < oh; oy++) {
                    for (int ox = 0; ox < ow; ox++) {
                        double acc = bias == null ? 0 : bias[o];
                        for (int ci = 0; ci < inPerGroup; ci++) {
                            int c = group * inPerGroup + ci;
                            for (int ky = 0; ky < s.kernelH(); ky++) {
                                int iy = oy * s.stride()[0] - s.padding()[0] + ky * s.dilation()[0];
                                if (iy < 0 || iy >= s.height()) continue;
                                for (int kx = 0; kx < s.kernelW(); kx++) {
                                    int ix = ox * s.stride()[1] - s.padding()[1] + kx * s.dilation()[1];
                                    if (ix < 0 || ix >= s.width()) continue;
                                    double xv = x[((n * s.inChannels() + c) * s.height() + iy) * s.width() + ix];
                                    double wv = w[((o * inPerGroup + ci) * s.kernelH() + ky) * s.kernelW() + kx];
                                    acc += xv * wv;
                                }
                            }
                        }
                        y[((n * s.outChannels() + o) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        return y;
    }

    /**
     * Softmax (or log-softmax when {@code log}) of a row-major tensor over {@code dim}, shifted
     * by the fibre's maximum for stability.
     */
    static double[] softmaxRef(double[] x, long[] shape, int dim, boolean log) {
        int outer = 1, inner = 1, size = (int) shape[dim];
        for (int d = 0; d < dim; d++) outer *= (int) shape[d];
        for (int d = dim + 1; d < shape.length; d++) inner *= (int) shape[d];
        double[] y = new double[x.length];
        for (int o = 0; o < outer; o++) {
            for (int i = 0; i < inner; i++) {
                int base = o * size * inner + i;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < size; j++) max = Math.max(max, x[base + j * inner]);
                double sum = 0;
                for (int j = 0; j < size; j++) sum += Math.exp(x[base + j * inner] - max);
                for (int j = 0; j < size; j++) {
                    double shifted = x[base + j * inner] - max;
                    y[base + j * inner] = log ? shifted - Math.log(sum) : Math.exp(shifted) / sum;
                }
            }
        }
        return y;
    }

    // ------------------------------------------------------------------ helpers

    private double[] gaussian(int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = rnd.nextGaussian();
        return a;
    }

    private static double[] filled(int n, double v) {
        double[] a = new double[n];
        Arrays.fill(a, v);
        return a;
    }

    private static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    private static double[] toDoubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    /** Elementwise {@code |actual - expected| <= tol·max(1, |expected|)}, naming the first mismatch. */
    static void assertAllClose(String what, double[] expected, double[] actual, double tol) {
        assertEquals(expected.length, actual.length, what + ": element count");
        for (int i = 0; i < expected.length; i++) {
            double bound = tol * Math.max(1, Math.abs(expected[i]));
            if (!(Math.abs(actual[i] - expected[i]) <= bound)) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " (tolerance " + bound + ")");
            }
        }
    }
}
