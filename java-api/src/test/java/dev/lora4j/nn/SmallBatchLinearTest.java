package dev.lora4j.nn;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.NoGradScope;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.testing.ChildJvm;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Functional#linear} for a few rows (at most 16 in float32 on the CPU the shim runs the
 * product in its small-batch kernels, with an autograd node of its own; 17 rows take ATen's
 * path): the output and the gradients of input, weight and bias against a plain-Java float64
 * reference, with and without bias, 1 to 17 rows, sizes that are no multiples of the vector
 * width; on the default kernels (AVX-512 where the CPU has it) here and on the AVX2 kernels
 * (LORA4J_SMALL_GEMM=avx2) in a child JVM.
 */
class SmallBatchLinearTest {

    /** One case: x (rows, in) or (2, rows/2, in), w (out, in), an optional bias. */
    private static void check(int rows, int in, int out, boolean bias, boolean threeD, long seed) {
        Random r = new Random(seed);
        float[] xs = random(r, rows * in), ws = random(r, out * in), bs = random(r, out), cs = random(r, rows * out);
        try (TensorScope s = TensorScope.open()) {
            long[] xShape = threeD ? new long[] {2, rows / 2, in} : new long[] {rows, in};
            long[] yShape = threeD ? new long[] {2, rows / 2, out} : new long[] {rows, out};
            Tensor x = Tensor.of(xs, xShape).requiresGrad_(true);
            Tensor w = Tensor.of(ws, out, in).requiresGrad_(true);
            Tensor b = bias ? Tensor.of(bs, out).requiresGrad_(true) : null;
            Tensor c = Tensor.of(cs, yShape);
            Tensor y = Functional.linear(x, w, b);
            assertArrayEquals(yShape, y.shape(), "output shape");
            y.mul(c).sum().backward();

            String what = rows + "×" + in + " → " + out + (bias ? " with bias" : "") + (threeD ? " (3-d)" : "") + ": ";
            float[] yv = y.toFloatArray(), dx = x.grad().toFloatArray(), dw = w.grad().toFloatArray();
            for (int m = 0; m < rows; m++)
                for (int n = 0; n < out; n++) {
                    double sum = bias ? bs[n] : 0, mag = bias ? Math.abs(bs[n]) : 0;
                    for (int k = 0; k < in; k++) {
                        sum += (double) xs[m * in + k] * ws[n * in + k];
                        mag += Math.abs((double) xs[m * in + k] * ws[n * in + k]);
                    }
                    near(sum, yv[m * out + n], mag, what + "y[" + m + "," + n + "]");
                }
            for (int m = 0; m < rows; m++) // dx = c·w
                for (int k = 0; k < in; k++) {
                    double sum = 0, mag = 0;
                    for (int n = 0; n < out; n++) {
                        sum += (double) cs[m * out + n] * ws[n * in + k];
                        mag += Math.abs((double) cs[m * out + n] * ws[n * in + k]);
                    }
                    near(sum, dx[m * in + k], mag, what + "dx[" + m + "," + k + "]");
                }
            for (int n = 0; n < out; n++) // dw = cᵀ·x
                for (int k = 0; k < in; k++) {
                    double sum = 0, mag = 0;
                    for (int m = 0; m < rows; m++) {
                        sum += (double) cs[m * out + n] * xs[m * in + k];
                        mag += Math.abs((double) cs[m * out + n] * xs[m * in + k]);
                    }
                    near(sum, dw[n * in + k], mag, what + "dw[" + n + "," + k + "]");
                }
            if (bias) {
                float[] db = b.grad().toFloatArray();
                for (int n = 0; n < out; n++) {
                    double sum = 0, mag = 0;
                    for (int m = 0; m < rows; m++) {
                        sum += cs[m * out + n];
                        mag += Math.abs(cs[m * out + n]);
                    }
                    near(sum, db[n], mag, what + "dbias[" + n + "]");
                }
            }
            // Without grad mode, and with nothing that needs a gradient: the same bits.
            Tensor plainX = Tensor.of(xs, xShape), plainW = Tensor.of(ws, out, in), plainB = bias ? Tensor.of(bs, out) : null;
            assertTrue(Functional.linear(plainX, plainW, plainB).equal(y), what + "forward without any gradient");
            try (NoGradScope g = Torch.noGrad()) {
                assertTrue(Functional.linear(x, w, b).equal(y), what + "forward without grad mode");
            }
        }
    }

    /** float32 sums of |terms| ≤ mag: within a few ulps of mag per term's rounding. */
    private static void near(double expected, float actual, double mag, String what) {
        double tol = 1e-6 * (mag + 1e-3);
        if (!(Math.abs(expected - actual) <= tol))
            throw new AssertionError(what + " = " + actual + ", expected " + expected + " (±" + tol + ")");
    }

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    /** Every case; throws on the first wrong number. */
    static void checkAll() {
        long seed = 1;
        for (int rows = 1; rows <= 17; rows++) {
            check(rows, 37, 23, true, false, seed++);
            check(rows, 37, 23, false, false, seed++);
        }
        for (int rows : new int[] {5, 10, 16}) {
            check(rows, 100, 70, true, false, seed++); // more columns than one tile, ragged ends
            check(rows, 16, 64, true, false, seed++); // exact multiples
            check(rows, 300, 5, false, false, seed++); // long rows, few outputs
        }
        check(10, 41, 19, true, true, seed++); // (2, 5, in): ten rows in all
        check(1, 7, 3, true, false, seed);
    }

    @Test
    void defaultKernels() {
        checkAll();
    }

    @Test
    void avx2Kernels() throws Exception {
        ChildJvm.Result r = ChildJvm.run(Child.class, java.util.List.of(), 120, Map.of("LORA4J_SMALL_GEMM", "avx2"));
        assertFalse(r.crashed(), "the child JVM crashed:\n" + r);
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("small-batch linear ok"), r.output());
    }

    /** The cases in a child JVM (run with LORA4J_SMALL_GEMM set). */
    public static final class Child {
        public static void main(String[] args) {
            checkAll();
            System.out.println("small-batch linear ok");
        }
    }
}
