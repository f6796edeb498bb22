package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.nn.Functional;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * 10,000 randomized calls of the public API with random shapes, dtypes, dimensions, NaN and
 * infinity data, closed tensors and nulls: each either returns or throws a
 * {@link RuntimeException} (never an Error, never a crash), and the process then computes
 * correctly and has leaked no tensor.
 */
class RobustnessTest {

    private static final int CALLS = 10_000;

    private final Random rnd = new Random(8);

    private long[] shape() {
        int rank = rnd.nextInt(4);
        long[] s = new long[rank];
        for (int i = 0; i < rank; i++) s[i] = rnd.nextInt(10) == 0 ? -1 - rnd.nextInt(3) : rnd.nextInt(5);
        return s;
    }

    private DType dtype() {
        DType[] all = DType.values();
        return all[rnd.nextInt(all.length)];
    }

    private Tensor tensor(List<Tensor> pool) {
        int pick = rnd.nextInt(10);
        if (pick == 0) return null;
        if (pick <= 2 && !pool.isEmpty()) return pool.get(rnd.nextInt(pool.size())); // may be closed
        Tensor t = Tensor.randn(DType.FLOAT32, nonNegative(shape()));
        if (rnd.nextInt(4) == 0) t = t.div(0.0); // infinities and NaN
        if (rnd.nextInt(3) == 0) t = t.to(dtype());
        pool.add(t);
        if (rnd.nextInt(8) == 0) t.close();
        return t;
    }

    private static long[] nonNegative(long[] s) {
        long[] out = s.clone();
        for (int i = 0; i < out.length; i++) out[i] = Math.abs(out[i]) % 5;
        return out;
    }

    @Test
    void randomizedCallsGiveJavaExceptionsOrResultsAndTheProcessStaysHealthy() {
        long reclaimed = Torch.reclaimedTensorCount();
        int ok = 0;
        int refused = 0;
        try (TensorScope scope = TensorScope.open()) {
            List<Tensor> pool = new ArrayList<>();
            List<Supplier<Object>> ops = List.of(
                    () -> Tensor.zeros(dtype(), shape()),
                    () -> Tensor.full(dtype(), rnd.nextGaussian(), shape()),
                    () -> tensor(pool).add(tensor(pool)),
                    () -> tensor(pool).matmul(tensor(pool)),
                    () -> tensor(pool).mm(tensor(pool)),
                    () -> tensor(pool).reshape(shape()),
                    () -> tensor(pool).view(shape()),
                    () -> tensor(pool).transpose(rnd.nextInt(7) - 3, rnd.nextInt(7) - 3),
                    () -> tensor(pool).sum(new int[] {rnd.nextInt(7) - 3}, rnd.nextBoolean()),
                    () -> tensor(pool).narrow(rnd.nextInt(5) - 2, rnd.nextInt(5) - 1, rnd.nextInt(5) - 1),
                    () -> tensor(pool).indexSelect(rnd.nextInt(3) - 1, Tensor.of(new long[] {rnd.nextInt(6) - 1}, 1)),
                    () -> tensor(pool).softmax(rnd.nextInt(5) - 2),
                    () -> tensor(pool).to(dtype()).toFloatArray(),
                    () -> tensor(pool).item(),
                    () -> {
                        tensor(pool).requiresGrad_(rnd.nextBoolean()).sum().backward();
                        return null;
                    },
                    () -> Functional.linear(tensor(pool), tensor(pool), rnd.nextBoolean() ? null : tensor(pool)),
                    () -> Functional.conv2d(tensor(pool), tensor(pool), null, rnd.nextInt(3), rnd.nextInt(3), 1 + rnd.nextInt(2), 1 + rnd.nextInt(2)),
                    () -> Functional.embedding(tensor(pool), tensor(pool)),
                    () -> Functional.crossEntropy(tensor(pool), tensor(pool)),
                    () -> Functional.mseLoss(tensor(pool), tensor(pool)),
                    () -> Tensor.cat(java.util.Arrays.asList(tensor(pool), tensor(pool)), rnd.nextInt(5) - 2),
                    () -> tensor(pool).data(),
                    () -> Tensor.copyOf(java.lang.foreign.MemorySegment.ofArray(new float[rnd.nextInt(6)]), dtype(), shape()),
                    () -> Linalg.svd(tensor(pool)));
            for (int i = 0; i < CALLS; i++) {
                try {
                    ops.get(rnd.nextInt(ops.size())).get();
                    ok++;
                } catch (RuntimeException e) {
                    assertNotNull(e.getMessage(), () -> "an exception without a message: " + e);
                    refused++;
                }
            }
        }
        assertEquals(CALLS, ok + refused);
        assertTrue(refused > CALLS / 10 && ok > CALLS / 10, "both outcomes exercised: ok " + ok + ", refused " + refused);
        try (TensorScope s = TensorScope.open()) {
            Tensor m = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
            assertArrayEquals(new float[] {7, 10, 15, 22}, m.matmul(m).toFloatArray());
        }
        assertEquals(reclaimed, Torch.reclaimedTensorCount(), "every tensor was freed by its scope");
        System.out.printf("robustness: %d calls returned, %d refused with a Java exception%n", ok, refused);
    }
}
