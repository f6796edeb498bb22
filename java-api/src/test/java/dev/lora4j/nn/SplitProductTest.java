package dev.lora4j.nn;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.NoGradScope;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.testing.ChildJvm;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Large matrix products at 2 intra-op threads, which the shim cuts into one block of rows (or
 * of columns, when the result is wider than tall) per thread with OpenBLAS pinned to one thread:
 * {@link Functional#linear}'s output and its gradients for input, weight and bias, in float32
 * and float64, 2-d and 3-d, with and without bias, and {@link Tensor#mm} / {@link Tensor#matmul}
 * without a graph, all against plain-Java float64 references, on shapes whose blocks end
 * mid-tile. Also that the shim's parallel loops run on the intra-op threads at all (a shim
 * compiled without OpenMP runs them on the calling thread) and that OpenBLAS is pinned.
 */
class SplitProductTest {

    private int threadsBefore;

    @BeforeEach
    void twoThreads() {
        threadsBefore = Torch.getNumThreads();
        Torch.setNumThreads(2);
    }

    @AfterEach
    void restore() {
        Torch.setNumThreads(threadsBefore);
    }

    @Test
    void theShimsLoopsUseTheIntraOpThreadsAndOpenBlasIsPinned() {
        assertTrue(Torch.buildInfo().intraOpParallel(), "the shim was compiled without its LibTorch's OpenMP");
        String settings = Torch.threadSettings();
        assertTrue(settings.contains("OpenBLAS threads 1") || settings.contains("BLAS not OpenBLAS"), settings);
    }

    @Test
    void linearSplitByRowsAndByColumnsMatchesTheReference() {
        long seed = 100;
        // 300 rows × 130 → 120: cut by rows (blocks of 160 and 140).
        SmallBatchLinearTest.check(300, 130, 120, true, false, seed++);
        SmallBatchLinearTest.check(300, 130, 120, false, false, seed++);
        SmallBatchLinearTest.check(300, 130, 120, true, true, seed++); // (2, 150, 130)
        // 40 rows × 130 → 900: wider than tall, cut by columns; dw (900 × 130 over 40 rows) too.
        SmallBatchLinearTest.check(40, 130, 900, true, false, seed++);
        SmallBatchLinearTest.check(40, 130, 900, false, true, seed);
    }

    @Test
    void float64LinearAndItsGradientsMatchTheReference() {
        int rows = 257, in = 131, out = 129;
        Random r = new Random(7);
        double[] xs = random(r, rows * in), ws = random(r, out * in), bs = random(r, out), cs = random(r, rows * out);
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.of(xs, rows, in).requiresGrad_(true);
            Tensor w = Tensor.of(ws, out, in).requiresGrad_(true);
            Tensor b = Tensor.of(bs, out).requiresGrad_(true);
            Tensor y = Functional.linear(x, w, b);
            y.mul(Tensor.of(cs, rows, out)).sum().backward();
            double[] y64 = y.toDoubleArray(), dx = x.grad().toDoubleArray(), dw = w.grad().toDoubleArray(),
                    db = b.grad().toDoubleArray();
            for (int m = 0; m < rows; m++)
                for (int n = 0; n < out; n++) {
                    double e = bs[n];
                    for (int k = 0; k < in; k++) e += xs[m * in + k] * ws[n * in + k];
                    assertEquals(e, y64[m * out + n], 1e-12, "y[" + m + "," + n + "]");
                }
            for (int m = 0; m < rows; m++)
                for (int k = 0; k < in; k++) {
                    double e = 0;
                    for (int n = 0; n < out; n++) e += cs[m * out + n] * ws[n * in + k];
                    assertEquals(e, dx[m * in + k], 1e-12, "dx[" + m + "," + k + "]");
                }
            for (int n = 0; n < out; n++) {
                double eb = 0;
                for (int m = 0; m < rows; m++) eb += cs[m * out + n];
                assertEquals(eb, db[n], 1e-12, "dbias[" + n + "]");
                for (int k = 0; k < in; k++) {
                    double e = 0;
                    for (int m = 0; m < rows; m++) e += cs[m * out + n] * xs[m * in + k];
                    assertEquals(e, dw[n * in + k], 1e-12, "dw[" + n + "," + k + "]");
                }
            }
        }
    }

    @Test
    void mmAndMatmulWithoutAGraphMatchTheReference() {
        int m = 70, k = 300, n = 250; // 5.25 M multiply-adds: split at 2 threads, by the columns of the wider-than-tall result
        Random r = new Random(11);
        double[] as = random(r, 2 * m * k), bs = random(r, k * n);
        try (TensorScope s = TensorScope.open(); NoGradScope g = Torch.noGrad()) {
            Tensor b = Tensor.of(bs, k, n);
            Tensor a3 = Tensor.of(as, 2, m, k);
            double[] mm = a3.narrow(0, 1, 1).reshape(m, k).mm(b).toDoubleArray(); // rows 70..139 of the data
            double[] matmul = a3.matmul(b).toDoubleArray();       // (2, 70, 300)·(300, 250): 140 rows
            for (int i = 0; i < 2 * m; i++)
                for (int j = 0; j < n; j++) {
                    double e = 0;
                    for (int p = 0; p < k; p++) e += as[i * k + p] * bs[p * n + j];
                    assertEquals(e, matmul[i * n + j], 1e-11, "matmul[" + i + "," + j + "]");
                    if (i >= m) assertEquals(e, mm[(i - m) * n + j], 1e-11, "mm[" + (i - m) + "," + j + "]");
                }
        }
    }

    /** LORA4J_BLAS_THREADS=2: OpenBLAS keeps two threads, products stay whole and still right. */
    @Test
    void blasThreadsFromTheEnvironment() throws Exception {
        ChildJvm.Result r = ChildJvm.run(BlasThreadsChild.class, List.of(), 120, Map.of("LORA4J_BLAS_THREADS", "2"));
        assertFalse(r.crashed(), "the child JVM crashed:\n" + r);
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("OpenBLAS threads 2") || r.output().contains("BLAS not OpenBLAS"), r.output());
        assertTrue(r.output().contains("blas threads ok"), r.output());
    }

    /** Prints the thread settings, then runs the linear cases at 2 intra-op threads. */
    public static final class BlasThreadsChild {
        public static void main(String[] args) {
            System.out.println(Torch.threadSettings());
            Torch.setNumThreads(2);
            SmallBatchLinearTest.check(300, 130, 120, true, false, 1);
            SmallBatchLinearTest.check(40, 130, 900, false, true, 2);
            System.out.println("blas threads ok");
        }
    }

    private static double[] random(Random r, int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = r.nextGaussian();
        return a;
    }
}
