package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.dylora.DyLora;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Combination;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * 10,000 randomized calls of the public API with random shapes, dtypes, dimensions, NaN and
 * infinity data, closed tensors and nulls: each either returns or throws a
 * {@link RuntimeException} (never an Error, never a crash), and the process then computes
 * correctly and has leaked no tensor. Then 10,000 randomized named-adapter calls with wrong,
 * deleted, reserved and null adapter names: each returns or throws an
 * {@link IllegalArgumentException}, {@link IllegalStateException}, {@link NullPointerException}
 * or {@link TorchException} with a message, and the model is intact afterwards.
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

    /** Adapter names a caller may get wrong: loaded ones, deleted ones, never-seen ones, reserved, odd and null. */
    private String adapterName(List<String> seen) {
        int pick = rnd.nextInt(12);
        if (pick == 0) return null;
        if (pick == 1) return AdapterBank.BASE;
        if (pick == 2) return "";
        if (pick == 3) return List.of("default ", "DEFAULT", "a.b", "../a", "\u00e9t\u00e9", "a\u0000b", "x".repeat(300)).get(rnd.nextInt(7));
        if (pick <= 5) return "missing" + rnd.nextInt(3);
        return seen.get(rnd.nextInt(seen.size()));
    }

    private String[] adapterNames(List<String> seen, int n) {
        String[] out = new String[n];
        for (int i = 0; i < n; i++) out[i] = adapterName(seen);
        return out;
    }

    @Test
    void randomizedAdapterCallsWithWrongNamesGiveJavaExceptionsOrResults() {
        long reclaimed = Torch.reclaimedTensorCount();
        int ok = 0;
        int refused = 0;
        java.util.Map<String, Integer> byType = new java.util.TreeMap<>();
        Torch.manualSeed(9);
        try (Sequential model = new Sequential(new Linear(6, 5), Activation.relu(), new Linear(5, 3));
             Sequential dylora = new Sequential(new Linear(6, 5), Activation.relu(), new Linear(5, 3));
             TensorScope scope = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            float[] baseOut;
            try (var ng = Torch.noGrad()) {
                baseOut = model.forward(x).toFloatArray();
            }
            Lora.wrap(model, LoraConfig.of(2, 4));
            Lora.addAdapter(model, "a", LoraConfig.of(1, 2));
            Lora.addAdapter(model, "b", LoraConfig.of(3, 3).withTargetModules("0"));
            DyLora.wrap(dylora, LoraConfig.of(4, 4));
            model.eval();
            dylora.eval();
            List<String> seen = new ArrayList<>(List.of("default", "a", "b", "c", "d"));
            List<Supplier<Object>> ops = List.of(
                    () -> Lora.forward(model, x, adapterNames(seen, rnd.nextInt(3) == 0 ? rnd.nextInt(6) : 4)),
                    () -> Lora.forward(model, x, adapterNames(seen, 4)),
                    () -> {
                        Lora.setAdapter(model, adapterNames(seen, rnd.nextInt(3)));
                        return null;
                    },
                    () -> {
                        Lora.deleteAdapter(model, adapterName(seen));
                        return null;
                    },
                    () -> {
                        String n = adapterName(seen);
                        if (tooMany(model)) return null;
                        return Lora.addAdapter(model, n, LoraConfig.of(1 + rnd.nextInt(3), 2));
                    },
                    () -> Lora.merge(model, rnd.nextBoolean(), adapterNames(seen, rnd.nextInt(3))),
                    () -> Lora.unmerge(model),
                    () -> {
                        if (tooMany(model)) return null;
                        int k = 1 + rnd.nextInt(2);
                        double[] w = new double[rnd.nextInt(5) == 0 ? k + 1 : k];
                        for (int i = 0; i < w.length; i++) w[i] = rnd.nextInt(10) == 0 ? Double.NaN : rnd.nextGaussian();
                        Combination type = Combination.values()[rnd.nextInt(Combination.values().length)];
                        Lora.addWeightedAdapter(model, java.util.Arrays.asList(adapterNames(seen, k)), w, adapterName(seen), type,
                                rnd.nextInt(4) - 1);
                        return null;
                    },
                    () -> Lora.adapterNames(model),
                    () -> DyLora.forward(dylora, x, rnd.nextInt(7) - 1));
            for (int i = 0; i < CALLS; i++) {
                try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                    ops.get(rnd.nextInt(ops.size())).get();
                    ok++;
                } catch (IllegalArgumentException | IllegalStateException | NullPointerException | TorchException e) {
                    assertNotNull(e.getMessage(), () -> "an exception without a message: " + e);
                    byType.merge(e.getClass().getSimpleName(), 1, Integer::sum);
                    refused++;
                }
            }
            // The model is intact: with its adapters unmerged and inactive it is the base model
            // again (up to the rounding of merge-then-unmerge).
            Lora.unmerge(model);
            Lora.setAdapter(model);
            try (var ng = Torch.noGrad()) {
                float[] after = model.forward(x).toFloatArray();
                for (int i = 0; i < after.length; i++) assertEquals(baseOut[i], after[i], 1e-4, "output " + i);
                String[] base = new String[4];
                java.util.Arrays.fill(base, AdapterBank.BASE);
                float[] rows = Lora.forward(model, x, base).toFloatArray();
                for (int i = 0; i < rows.length; i++) assertEquals(baseOut[i], rows[i], 1e-4, "base rows " + i);
            }
        }
        assertEquals(CALLS, ok + refused);
        assertTrue(refused > CALLS / 10 && ok > CALLS / 10, "both outcomes exercised: ok " + ok + ", refused " + refused);
        assertEquals(reclaimed, Torch.reclaimedTensorCount(), "every tensor was freed");
        System.out.printf("adapter robustness: %d calls returned, %d refused with a Java exception %s%n", ok, refused, byType);
    }

    /** Keeps the model small: past 6 adapters, deletes an unmerged one instead of adding. */
    private boolean tooMany(Sequential model) {
        List<String> names = Lora.adapterNames(model);
        if (names.size() < 6) return false;
        Lora.unmerge(model);
        Lora.deleteAdapter(model, names.get(rnd.nextInt(names.size())));
        return true;
    }
}
