package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.nn.Sequential;
import java.util.Locale;

/**
 * (f) merged against base inference measured side by side: the MLP of {@code Lora4jWork}'s
 * {@code inferBase} and the same architecture with rank-1 adapters merged into its weights
 * ({@code inferMerged}), in blocks of forwards interleaved in one JVM, the order alternating each
 * round. Both run the same products on weights of the same shapes, so the ratio JMH gives for
 * the two benchmarks measured minutes apart is the machine's drift more than anything merging
 * changed; interleaved blocks see the same machine, and their per-round ratio is what the target
 * "merged ≤ 1.02× base" is about. Short blocks and many rounds (64 of 200 forwards by default):
 * the machine's speed drifts within seconds, and neighbouring blocks see nearly the same one.
 *
 * <p>Prints the medians and, for {@code benchmarks/run-all.sh}'s report, one line
 * {@code RESULT merged_over_base THREADS r1 r2 ...}: the per-round wall-time ratios.
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.InferInterleaved [rounds] [forwards-per-block] [threads]}
 */
public final class InferInterleaved {

    private InferInterleaved() {}

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 64;
        int per = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        if (rounds < 1 || per < 1) throw new IllegalArgumentException("rounds and forwards per block must be >= 1");
        Lora4jWork.threads(threads);
        Lora4jWork.InferState s = new Lora4jWork.InferState();
        s.build();
        try {
            Sequential[] models = {s.base, s.merged};
            long[][] wall = new long[2][rounds];
            for (int r = -1; r < rounds; r++) { // round -1: warm-up, not counted
                for (int k = 0; k < 2; k++) {
                    int w = (k + Math.max(r, 0)) % 2;
                    long w0 = System.nanoTime();
                    for (int i = 0; i < per; i++) {
                        try (var ng = Torch.noGrad(); Tensor y = models[w].forward(s.x)) {
                            // freed at once
                        }
                    }
                    if (r >= 0) wall[w][r] = System.nanoTime() - w0;
                }
            }
            double[] q = new double[rounds];
            for (int r = 0; r < rounds; r++) q[r] = (double) wall[1][r] / wall[0][r];
            System.out.printf(Locale.ROOT, "%d intra-op thread(s), %d rounds of %d forwards per model%n", threads, rounds, per);
            double[][] micros = new double[2][rounds];
            for (int w = 0; w < 2; w++) for (int r = 0; r < rounds; r++) micros[w][r] = wall[w][r] / 1e3 / per;
            RoundRatios.printSides(new String[] {"base", "merged"}, micros, "µs/forward");
            RoundRatios.print("merged / base", "merged_over_base", threads, q);
        } finally {
            s.tearDown();
        }
    }
}
