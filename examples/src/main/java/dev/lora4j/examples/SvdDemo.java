package dev.lora4j.examples;

import dev.lora4j.DType;
import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.Locale;

/**
 * Seed 004: a 10×10 matrix of rank 2 is rebuilt exactly from B = U_r·S_r (10×2) and
 * A = V_rᵀ (2×10), the SVD's leading factors: 40 numbers instead of 100. This is why a
 * low-rank update B·A can stand for a full weight update.
 *
 * <p>Flags: {@code --n N --rank R --seed S}.
 */
public final class SvdDemo {

    /** What one run found. */
    public record Result(long fullParameters, long factorParameters, double maxError, int numericalRank) {}

    private SvdDemo() {}

    public static void main(String[] args) {
        Flags.check(args, java.util.List.of("--n", "--rank", "--seed"));
        int n = Flags.intFlag(args, "--n", 10);
        int rank = Flags.intFlag(args, "--rank", 2);
        Result r = run(n, rank, Flags.longFlag(args, "--seed", 0), true);
        System.out.printf(Locale.ROOT, "%nW has %d numbers; B and A have %d (%.0f%%); max |W - B·A| = %.2e%n",
                r.fullParameters(), r.factorParameters(), 100.0 * r.factorParameters() / r.fullParameters(), r.maxError());
    }

    public static Result run(int n, int rank, long seed, boolean verbose) {
        Torch.manualSeed(seed);
        try (TensorScope s = TensorScope.open()) {
            // W = X·Y with X (n×rank), Y (rank×n): a matrix of rank `rank`.
            Tensor w = Tensor.randn(DType.FLOAT64, n, rank).matmul(Tensor.randn(DType.FLOAT64, rank, n));
            Linalg.Svd svd = Linalg.svd(w);
            double[] sv = svd.s().toDoubleArray();
            int numericalRank = 0;
            for (double v : sv) if (v > 1e-10 * sv[0]) numericalRank++;
            Tensor b = svd.u().narrow(1, 0, rank).mul(svd.s().narrow(0, 0, rank)); // U_r·S_r
            Tensor a = svd.vh().narrow(0, 0, rank);                                // V_rᵀ
            Tensor rebuilt = b.matmul(a);
            double err = rebuilt.sub(w).abs().max().item();
            if (verbose) {
                System.out.printf(Locale.ROOT, "W: %d×%d of rank %d; singular values:", n, n, numericalRank);
                for (double v : sv) System.out.printf(Locale.ROOT, " %.3g", v);
                System.out.printf(Locale.ROOT, "%nB = U_r·S_r: %s, A = V_rᵀ: %s%n", shape(b), shape(a));
            }
            return new Result((long) n * n, b.numel() + a.numel(), err, numericalRank);
        }
    }

    private static String shape(Tensor t) {
        return t.size(0) + "×" + t.size(1);
    }
}
