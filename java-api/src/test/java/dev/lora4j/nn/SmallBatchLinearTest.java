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
    static void check(int rows, int in, int out, boolean bias, boolean threeD, long seed) {
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
            float[] noBias = new float[Math.max(in, out)];
            // y = x·wᵀ + bias, dx = c·w, dw = cᵀ·x, dbias = Σ_rows c (a product with a column of ones)
            product(y.toFloatArray(), rows, out, in, (m, k) -> xs[m * in + k], (k, n) -> ws[n * in + k], bias ? bs : noBias,
                    what + "y");
            product(x.grad().toFloatArray(), rows, in, out, (m, n) -> cs[m * out + n], (n, k) -> ws[n * in + k], noBias,
                    what + "dx");
            product(w.grad().toFloatArray(), out, in, rows, (n, m) -> cs[m * out + n], (m, k) -> xs[m * in + k], noBias,
                    what + "dw");
            if (bias)
                product(b.grad().toFloatArray(), out, 1, rows, (n, m) -> cs[m * out + n], (m, j) -> 1, noBias, what + "dbias");
            // Without grad mode, and with nothing that needs a gradient: the same bits.
            Tensor plainX = Tensor.of(xs, xShape), plainW = Tensor.of(ws, out, in), plainB = bias ? Tensor.of(bs, out) : null;
            assertTrue(Functional.linear(plainX, plainW, plainB).equal(y), what + "forward without any gradient");
            try (NoGradScope g = Torch.noGrad()) {
                assertTrue(Functional.linear(x, w, b).equal(y), what + "forward without grad mode");
            }
        }
    }

    /** An element of a matrix operand. */
    private interface Matrix {
        double at(int row, int column);
    }

    /**
     * actual (rows, cols) against Σ_i a(r, i)·b(i, c) + add[c] in float64: within 1e-6 of the sum
     * of the terms' magnitudes (float32 rounding of a sum in any order).
     */
    private static void product(float[] actual, int rows, int cols, int inner, Matrix a, Matrix b, float[] add, String what) {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                double sum = add[c], mag = Math.abs(add[c]);
                for (int i = 0; i < inner; i++) {
                    double term = a.at(r, i) * b.at(i, c);
                    sum += term;
                    mag += Math.abs(term);
                }
                double tol = 1e-6 * (mag + 1e-3), got = actual[r * cols + c];
                if (!(Math.abs(sum - got) <= tol))
                    throw new AssertionError(what + "[" + r + "," + c + "] = " + got + ", expected " + sum + " (±" + tol + ")");
            }
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
