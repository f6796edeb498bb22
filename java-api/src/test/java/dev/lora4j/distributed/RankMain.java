package dev.lora4j.distributed;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A rank of the distributed tests, started by {@link RankProcess} with the group in its
 * environment. Modes:
 * <ul>
 *   <li>{@code train OUT BATCH STEPS}: checks the collectives against closed forms, then runs
 *       {@link TrainingJob} and writes its LoRA weights to OUT (rank 0 only);
 *   <li>{@code die-after-one}: one all-reduce, then the process halts without closing anything;
 *   <li>{@code sleep}: joins the group, then calls nothing for a minute (a stuck rank).
 * </ul>
 * Exits 0 on success, 1 with a stack trace otherwise.
 */
public final class RankMain {

    private RankMain() {}

    public static void main(String[] args) throws Exception {
        Torch.setNumThreads(1);
        try (ProcessGroup group = ProcessGroup.fromEnvironment(Duration.ofSeconds(Long.parseLong(
                System.getenv().getOrDefault("LORA4J_TEST_TIMEOUT_S", "120"))))) {
            switch (args[0]) {
                case "train" -> {
                    checkCollectives(group);
                    var weights = TrainingJob.train(group, Integer.parseInt(args[2]), Integer.parseInt(args[3]));
                    if (group.rank() == 0) TrainingJob.write(Path.of(args[1]), weights);
                    group.barrier();
                }
                case "die-after-one" -> {
                    try (TensorScope s = TensorScope.open()) {
                        group.allReduce(ReduceOp.SUM, Tensor.ones(4));
                    }
                    System.out.println("halting");
                    System.out.flush();
                    Runtime.getRuntime().halt(3);
                }
                case "sleep" -> Thread.sleep(60_000);
                default -> throw new IllegalArgumentException(args[0]);
            }
        } catch (Throwable t) {
            t.printStackTrace(System.out);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.println("ok");
    }

    // Rank r contributes r + 1 (and i in element i): closed forms of the sum and the mean.
    private static void checkCollectives(ProcessGroup g) {
        int n = g.worldSize(), r = g.rank();
        try (TensorScope s = TensorScope.open()) {
            Tensor f = Tensor.arange(0, 5, 1, DType.FLOAT32).add(r + 1);
            Tensor d = Tensor.full(DType.FLOAT64, r + 1, 2, 3);
            Tensor l = Tensor.full(DType.INT64, r + 1, 3);
            g.allReduce(List.of(f, d, l), ReduceOp.SUM);
            double sumRanks = n * (n + 1) / 2.0;
            for (int i = 0; i < 5; i++) expect(f.toFloatArray()[i], n * i + sumRanks, "float32 sum");
            for (double v : d.toDoubleArray()) expect(v, sumRanks, "float64 sum");
            for (long v : l.toLongArray()) expect(v, sumRanks, "int64 sum");
            Tensor m = Tensor.full(DType.FLOAT32, r + 1, 7);
            g.allReduce(ReduceOp.AVG, m);
            for (float v : m.toFloatArray()) expect(v, (n + 1) / 2.0, "float32 mean");
            Tensor b = Tensor.full(DType.FLOAT32, r, 4, 2);
            g.broadcast(List.of(b), n - 1);
            for (float v : b.toFloatArray()) expect(v, n - 1, "broadcast from the last rank");
            g.barrier();
        }
    }

    private static void expect(double actual, double expected, String what) {
        if (Math.abs(actual - expected) > 1e-6 * Math.max(1, Math.abs(expected)))
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }
}
