package dev.lora4j.distributed;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Linear;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The process group's API within one JVM: a group of one, several ranks as threads (c10d allows
 * several groups per process), and bad input as clear Java exceptions.
 */
class ProcessGroupTest {

    static final Duration TIMEOUT = Duration.ofSeconds(60);

    /** A module used at two places shares its parameters: DDP hands each to the optimizer once (as PyTorch). */
    @Test
    @Timeout(60)
    void dataParallelListsASharedModulesParametersOnce() {
        try (ProcessGroup g = ProcessGroup.init("127.0.0.1", RankProcess.freePort(), 1, 0, TIMEOUT);
                TensorScope s = TensorScope.open()) {
            Linear shared = new Linear(3, 3);
            try (var model = new dev.lora4j.nn.Sequential(shared, dev.lora4j.nn.Activation.relu(), shared)) {
                DistributedDataParallel ddp = new DistributedDataParallel(model, g);
                assertEquals(2, ddp.trainableParameters().size());
                try (var opt = new dev.lora4j.optim.AdamW(ddp.trainableParameters(), 1e-2)) {
                    ddp.backward(model.forward(Tensor.ones(2, 3)).sum());
                    opt.step();
                }
            }
        }
    }

    @Test
    @Timeout(60)
    void aGroupOfOneReducesToItselfAndDataParallelTrainingEqualsPlainTraining() {
        try (ProcessGroup g = ProcessGroup.init("127.0.0.1", RankProcess.freePort(), 1, 0, TIMEOUT);
                TensorScope s = TensorScope.open()) {
            assertEquals(0, g.rank());
            assertEquals(1, g.worldSize());
            Tensor a = Tensor.of(1.5f, -2f, 3f);
            g.allReduce(ReduceOp.AVG, a);
            assertArrayEquals(new float[] {1.5f, -2f, 3f}, a.toFloatArray());
            g.broadcast(List.of(a), 0);
            g.barrier();
            var one = TrainingJob.train(g, 8, 3);
            assertEquals(0.0, TrainingJob.maxDifference(one, TrainingJob.train(null, 8, 3)), "bit-equal");
        }
    }

    @Test
    @Timeout(120)
    void threeRanksAsThreadsReduceBroadcastAndFillMissingGradientsWithZeros() throws Exception {
        List<String> results = onRanks(3, rank -> group -> {
            try (TensorScope s = TensorScope.open()) {
                // A parameter used on rank 0 only: the others contribute zeros.
                Tensor p = Tensor.full(DType.FLOAT64, 1.0, 2).requiresGrad_(true);
                if (rank == 0) p.mul(3.0).sum().backward();
                Tensor q = Tensor.zeros(3).requiresGrad_(true);
                q.mul(rank).sum().backward();
                group.allReduceGradients(List.of(p, q), ReduceOp.AVG);
                assertArrayEquals(new double[] {1, 1}, p.grad().toDoubleArray(), 1e-12); // (3 + 0 + 0) / 3
                assertArrayEquals(new float[] {1, 1, 1}, q.grad().toFloatArray(), 1e-6f); // (0 + 1 + 2) / 3
                Tensor b = Tensor.full(DType.INT32, rank, 5);
                group.broadcast(List.of(b), 2);
                assertArrayEquals(new int[] {2, 2, 2, 2, 2}, b.toIntArray());
                return "ok";
            }
        });
        assertEquals(List.of("ok", "ok", "ok"), results);
    }

    @Test
    @Timeout(120)
    void ranksWithDifferentModelsAllFailClearlyInsteadOfHanging() throws Exception {
        List<String> results = onRanks(2, rank -> group -> {
            Torch.manualSeed(rank);
            try (Linear model = new Linear(4, rank == 0 ? 3 : 5)) {
                var e = assertThrows(IllegalStateException.class, () -> new DistributedDataParallel(model, group));
                return e.getMessage();
            }
        });
        for (String m : results) assertTrue(m.startsWith("1 of 2 ranks have modules whose parameters"), m);
        assertTrue(results.get(1).contains("this rank (1)"), results.get(1));
    }

    /**
     * Collectives whose tensors or kinds differ between ranks: Gloo would abort the process
     * (a size or dtype mismatch throws in its I/O thread) or silently mix buffers of the same byte
     * count. Every rank must get a clear exception instead, and the group must stay in step
     * (a matching collective afterwards works).
     */
    @Test
    @Timeout(120)
    void collectivesThatDifferBetweenRanksFailOnEveryRankAndTheGroupStaysUsable() throws Exception {
        record Case(String name, String differs, IntFunction<java.util.function.Consumer<ProcessGroup>> call) {}
        List<Case> cases = List.of(
                new Case("allReduce sizes", "shapes", rank -> g -> g.allReduce(ReduceOp.SUM, Tensor.ones(rank == 0 ? 3 : 5))),
                new Case("allReduce dtypes, same bytes", "dtypes",
                        rank -> g -> g.allReduce(ReduceOp.SUM, rank == 0 ? Tensor.ones(4) : Tensor.ones(DType.FLOAT64, 2))),
                new Case("allReduce counts", "numbers of tensors", rank -> g -> g.allReduce(ReduceOp.SUM,
                        rank == 0 ? new Tensor[] {Tensor.ones(2)} : new Tensor[] {Tensor.ones(1), Tensor.ones(1)})),
                new Case("allReduce ops", "reduce ops",
                        rank -> g -> g.allReduce(rank == 0 ? ReduceOp.SUM : ReduceOp.AVG, Tensor.ones(2))),
                new Case("broadcast roots", "roots", rank -> g -> g.broadcast(List.of(Tensor.ones(2)), rank)),
                new Case("barrier against allReduce", "collectives", rank -> g -> {
                    if (rank == 0) g.barrier();
                    else g.allReduce(ReduceOp.SUM, Tensor.ones(2));
                }),
                new Case("broadcast sizes", "shapes",
                        rank -> g -> g.broadcast(List.of(Tensor.full(DType.FLOAT32, rank + 1, rank == 0 ? 3 : 5)), 0)),
                new Case("gradient sizes", "shapes", rank -> g -> g.allReduceGradients(
                        List.of(Tensor.zeros(rank == 0 ? 2 : 3).requiresGrad_(true)), ReduceOp.AVG)));
        List<String> results = onRanks(2, rank -> group -> {
            for (Case c : cases) {
                try (TensorScope s = TensorScope.open()) {
                    var e = assertThrows(dev.lora4j.TorchException.class, () -> c.call().apply(rank).accept(group), c.name());
                    assertTrue(e.getMessage().contains("ranks differ in their " + c.differs()), c.name() + ": " + e.getMessage());
                    assertTrue(e.getMessage().contains("this rank (" + rank + ")"), e.getMessage());
                    if (c.differs().equals("dtypes"))
                        assertTrue(e.getMessage().contains(rank == 0 ? "float32[4]" : "float64[2]"), e.getMessage());
                    // Still in step: a matching collective works.
                    Tensor t = Tensor.full(DType.FLOAT32, rank + 1, 3);
                    group.allReduce(ReduceOp.SUM, t);
                    assertArrayEquals(new float[] {3, 3, 3}, t.toFloatArray(), c.name());
                }
            }
            return "ok";
        });
        assertEquals(List.of("ok", "ok"), results);
    }

    /**
     * A rank whose own side of a collective is refused (in Java: a null, a closed tensor, a bad
     * root; in the shim: a parameter without grad, an average of integers) still takes part in
     * the ranks' check as a refusal: the other ranks fail at once with a message naming it instead
     * of waiting for the timeout (60 s here), and the group stays in step. A refused gradient
     * reduction leaves this rank's missing gradients missing.
     */
    @Test
    @Timeout(120)
    void aRankThatRefusesItsSideMakesTheOthersFailAtOnce() throws Exception {
        record Case(String name, Class<? extends Throwable> refusal, IntFunction<java.util.function.Consumer<ProcessGroup>> call) {}
        List<Case> cases = List.of(
                new Case("closed tensor", IllegalStateException.class, rank -> g -> {
                    Tensor t = Tensor.ones(2);
                    if (rank == 1) t.close();
                    g.allReduce(ReduceOp.SUM, t);
                }),
                new Case("null list", NullPointerException.class, rank -> g -> g.allReduce(rank == 1 ? null : List.of(Tensor.ones(2)), ReduceOp.SUM)),
                new Case("bad root", IllegalArgumentException.class, rank -> g -> g.broadcast(List.of(Tensor.ones(2)), rank == 1 ? 7 : 0)),
                new Case("no grad", dev.lora4j.TorchException.class, rank -> g -> g.allReduceGradients(
                        List.of(Tensor.zeros(2).requiresGrad_(rank == 0)), ReduceOp.SUM)),
                new Case("average of integers", dev.lora4j.TorchException.class, rank -> g -> g.allReduce(ReduceOp.AVG,
                        rank == 1 ? Tensor.ones(DType.INT64, 2) : Tensor.ones(2))));
        long start = System.nanoTime();
        List<String> results = onRanks(2, rank -> group -> {
            for (Case c : cases) {
                try (TensorScope s = TensorScope.open()) {
                    Throwable e = assertThrows(Throwable.class, () -> c.call().apply(rank).accept(group), c.name());
                    if (rank == 1) {
                        assertInstanceOf(c.refusal(), e, c.name());
                    } else {
                        assertInstanceOf(dev.lora4j.TorchException.class, e, c.name());
                        assertTrue(e.getMessage().contains("rank 1 refused its side"), c.name() + ": " + e.getMessage());
                    }
                    Tensor t = Tensor.full(DType.FLOAT32, rank + 1, 3);
                    group.allReduce(ReduceOp.SUM, t);
                    assertArrayEquals(new float[] {3, 3, 3}, t.toFloatArray(), c.name());
                }
            }
            try (TensorScope s = TensorScope.open()) {
                Tensor p = Tensor.zeros(rank == 0 ? 2 : 3).requiresGrad_(true); // refused by the ranks' check: shapes differ
                assertThrows(dev.lora4j.TorchException.class, () -> group.allReduceGradients(List.of(p), ReduceOp.AVG));
                assertNull(p.grad(), "a refused reduction gives no zero gradient");
            }
            return "ok";
        });
        assertEquals(List.of("ok", "ok"), results);
        assertTrue(System.nanoTime() - start < 30_000_000_000L, "the refusals waited for the timeout");
    }

    @Test
    void badArgumentsAreJavaExceptionsNamingTheArgument() {
        assertThrows(IllegalArgumentException.class, () -> ProcessGroup.init("127.0.0.1", 0, 1, 0, TIMEOUT));
        assertThrows(IllegalArgumentException.class, () -> ProcessGroup.init("127.0.0.1", 70000, 1, 0, TIMEOUT));
        assertThrows(IllegalArgumentException.class, () -> ProcessGroup.init("127.0.0.1", 29500, 0, 0, TIMEOUT));
        var e = assertThrows(IllegalArgumentException.class, () -> ProcessGroup.init("127.0.0.1", 29500, 2, 2, TIMEOUT));
        assertTrue(e.getMessage().startsWith("rank must be in 0..1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ProcessGroup.init("127.0.0.1", 29500, 1, 0, Duration.ZERO));
        assertThrows(NullPointerException.class, () -> ProcessGroup.init(null, 29500, 1, 0, TIMEOUT));
        var env = assertThrows(IllegalStateException.class,
                () -> ProcessGroup.fromEnvironment(Map.of("MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29500", "RANK", "0"), TIMEOUT));
        assertEquals("environment variable WORLD_SIZE is not set", env.getMessage());
        var bad = assertThrows(IllegalStateException.class, () -> ProcessGroup.fromEnvironment(
                Map.of("MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "x", "WORLD_SIZE", "1", "RANK", "0"), TIMEOUT));
        assertEquals("environment variable MASTER_PORT is not an integer: 'x'", bad.getMessage());

        try (ProcessGroup g = ProcessGroup.init("127.0.0.1", RankProcess.freePort(), 1, 0, TIMEOUT);
                TensorScope s = TensorScope.open()) {
            assertThrows(IllegalArgumentException.class, () -> g.broadcast(List.of(Tensor.ones(2)), 1));
            assertThrows(NullPointerException.class, () -> g.allReduce(null, ReduceOp.SUM));
            var element = assertThrows(NullPointerException.class, () -> g.allReduce(java.util.Arrays.asList(Tensor.ones(1), null), ReduceOp.SUM));
            assertEquals("tensors[1]", element.getMessage());
            var avg = assertThrows(dev.lora4j.TorchException.class, () -> g.allReduce(ReduceOp.AVG, Tensor.ones(DType.INT64, 2)));
            assertTrue(avg.getMessage().contains("an average needs floating-point tensors"), avg.getMessage());
            Tensor closed = Tensor.ones(2);
            closed.close();
            assertThrows(IllegalStateException.class, () -> g.allReduce(ReduceOp.SUM, closed));
            var noGrad = assertThrows(dev.lora4j.TorchException.class, () -> g.allReduceGradients(List.of(Tensor.ones(2)), ReduceOp.AVG));
            assertTrue(noGrad.getMessage().contains("params[0] does not require grad"), noGrad.getMessage());
            g.barrier(); // bad input did not break the group
            g.close();
            assertThrows(IllegalStateException.class, g::barrier);
            g.close(); // idempotent
        }
    }

    @FunctionalInterface
    interface RankBody {
        String run(ProcessGroup group) throws Exception;
    }

    /** Runs {@code body} on {@code world} ranks, one thread each, and returns their results by rank. */
    static List<String> onRanks(int world, IntFunction<RankBody> body) throws Exception {
        int port = RankProcess.freePort();
        ExecutorService pool = Executors.newFixedThreadPool(world);
        try {
            List<Future<String>> futures = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (ProcessGroup g = ProcessGroup.init("127.0.0.1", port, world, rank, TIMEOUT)) {
                        return body.apply(rank).run(g);
                    }
                }));
            }
            List<String> out = new ArrayList<>();
            for (Future<String> f : futures) out.add(f.get(100, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }
}
