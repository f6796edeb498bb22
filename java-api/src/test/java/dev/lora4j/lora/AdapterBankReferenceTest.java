package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link AdapterBank#delta} against a plain-Java reference, Δy[t] = s_k·B_k·(A_k·x[t]) in
 * double arithmetic, on the shapes where the fused kernel's paths differ: one adapter's rows
 * apart in the batch (packed and scattered), rows without an adapter (zeros), ranks below the
 * stacks' (zero-padded), sizes that leave vector tails (in 37, out 45), 2-d, 3-d and 4-d
 * inputs, groups longer than one work unit of the kernel, float32 and float64.
 */
class AdapterBankReferenceTest {

    private static final int IN = 37;
    private static final int OUT = 45;
    private static final int[] RANKS = {3, 8, 5, 1};

    /** Factors of every adapter: a[k] (r, IN), b[k] (OUT, r) as row-major floats. */
    private record Factors(float[][] a, float[][] b, double[] scale) {
        static Factors random(Random rnd) {
            int n = RANKS.length;
            float[][] a = new float[n][];
            float[][] b = new float[n][];
            double[] scale = new double[n];
            for (int k = 0; k < n; k++) {
                a[k] = gaussian(rnd, RANKS[k] * IN, 0.3);
                b[k] = gaussian(rnd, OUT * RANKS[k], 0.3);
                scale[k] = 0.5 + k;
            }
            return new Factors(a, b, scale);
        }

        AdapterBank bank(DType type) {
            AdapterBank bank = new AdapterBank(IN, OUT);
            try (TensorScope s = TensorScope.open()) {
                for (int k = 0; k < a.length; k++) {
                    bank.put("t" + k, Tensor.of(a[k], RANKS[k], IN).to(type), Tensor.of(b[k], OUT, RANKS[k]).to(type), scale[k]);
                }
            }
            return bank;
        }

        /** The reference update of x (rows, tokens, IN) flattened, row i with adapter names[i]. */
        double[] delta(float[] x, String[] names, int tokens) {
            double[] y = new double[names.length * tokens * OUT];
            double[] h = new double[8];
            for (int i = 0; i < names.length; i++) {
                if (names[i].equals(AdapterBank.BASE)) continue;
                int k = Integer.parseInt(names[i].substring(1)), r = RANKS[k];
                for (int t = i * tokens; t < (i + 1) * tokens; t++) {
                    for (int j = 0; j < r; j++) {
                        double sum = 0;
                        for (int c = 0; c < IN; c++) sum += (double) a[k][j * IN + c] * x[t * IN + c];
                        h[j] = sum;
                    }
                    for (int o = 0; o < OUT; o++) {
                        double sum = 0;
                        for (int j = 0; j < r; j++) sum += (double) b[k][o * r + j] * h[j];
                        y[t * OUT + o] = scale[k] * sum;
                    }
                }
            }
            return y;
        }
    }

    private static float[] gaussian(Random rnd, int n, double sd) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextGaussian() * sd);
        return v;
    }

    /** Checks the bank's update of x shaped (names.length, middle..., IN) against the reference. */
    private static void check(Factors f, AdapterBank bank, DType type, String[] names, long[] middle, Random rnd, double tol) {
        int tokens = 1;
        for (long m : middle) tokens *= (int) m;
        long[] shape = new long[middle.length + 2];
        shape[0] = names.length;
        System.arraycopy(middle, 0, shape, 1, middle.length);
        shape[shape.length - 1] = IN;
        float[] xs = gaussian(rnd, names.length * tokens * IN, 1.0);
        double[] want = f.delta(xs, names, tokens);
        try (TensorScope s = TensorScope.open()) {
            Tensor y = bank.delta(Tensor.of(xs, shape).to(type), names);
            long[] outShape = shape.clone();
            outShape[outShape.length - 1] = OUT;
            assertArrayEquals(outShape, y.shape());
            assertEquals(type, y.dtype());
            double[] got = y.to(DType.FLOAT64).contiguous().toDoubleArray();
            for (int e = 0; e < want.length; e++) {
                int row = e / (tokens * OUT);
                if (names[row].equals(AdapterBank.BASE)) {
                    assertEquals(0.0, got[e], "row " + row + " has no adapter: zeros");
                } else {
                    assertEquals(want[e], got[e], tol * (1 + Math.abs(want[e])),
                            "element " + e + " (row " + row + ", " + names[row] + ", shape " + java.util.Arrays.toString(shape) + ")");
                }
            }
        }
    }

    private static void checkAllShapes(DType type, double tol) {
        Random rnd = new Random(15);
        Factors f = Factors.random(rnd);
        String b = AdapterBank.BASE;
        // Repeats apart, neighbours equal, rows without an adapter, every rank.
        String[] mixed = {"t2", "t0", b, "t2", "t3", "t3", "t1", b, "t0", "t2", "t1"};
        // One adapter on five rows apart: 5·20 = 100 token rows, more than one work unit.
        String[] spread = {"t1", "t0", "t1", b, "t1", "t3", "t1", "t1", "t2"};
        try (AdapterBank bank = f.bank(type)) {
            check(f, bank, type, mixed, new long[0], rnd, tol);
            check(f, bank, type, mixed, new long[] {3}, rnd, tol);
            check(f, bank, type, spread, new long[] {20}, rnd, tol);
            check(f, bank, type, new String[] {"t0", "t0", "t0"}, new long[] {40}, rnd, tol); // one contiguous run of 120
            check(f, bank, type, new String[] {"t3", b, "t3"}, new long[] {2, 5}, rnd, tol);
            check(f, bank, type, new String[] {b, b}, new long[] {4}, rnd, tol);
        }
    }

    @Test
    void float32MatchesThePlainJavaReference() {
        checkAllShapes(DType.FLOAT32, 1e-5);
    }

    @Test
    void float64MatchesThePlainJavaReference() {
        checkAllShapes(DType.FLOAT64, 1e-12);
    }
}
