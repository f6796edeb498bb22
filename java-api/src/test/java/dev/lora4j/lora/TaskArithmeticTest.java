package dev.lora4j.lora;

import static dev.lora4j.lora.BreadthReference.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.MergeUtils.MajoritySign;
import dev.lora4j.lora.MergeUtils.PruneMethod;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * add_weighted_adapter's TIES, DARE and magnitude-prune types against torch's evaluation of
 * PEFT's merge_utils and _generalized_task_arithmetic_weighted_adapter ({@link BreadthReference});
 * DARE's random masks (density &lt; 1) by their structure and statistics.
 */
class TaskArithmeticTest {

    private static final double[] WEIGHTS = {0.7, -0.4};

    /** The script's two rank-2 adapters on a Linear(5, 4): scales 8/2 and 2/2. */
    private static Sequential twoAdapters() {
        Sequential m = new Sequential(new Linear(5, 4));
        Lora.wrap(m, LoraConfig.of(2, 8));
        Lora.addAdapter(m, "b", LoraConfig.of(2, 2));
        LoraLayer l = (LoraLayer) m.get(0);
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            l.loraA("default").copy_(fixed(2, 5, 4));
            l.loraB("default").copy_(fixed(4, 2, 5));
            l.loraA("b").copy_(fixed(2, 5, 6).mul(0.8));
            l.loraB("b").copy_(fixed(4, 2, 7).mul(1.2));
        }
        return m;
    }

    private static void check(Combination type, double density, MajoritySign method, double[] a, double[] b) {
        try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open()) {
            Lora.addWeightedAdapter(m, List.of("default", "b"), WEIGHTS, "mix", type, 0, density, method);
            LoraLayer l = (LoraLayer) m.get(0);
            String what = type + " density " + density + " " + method;
            assertTrue(l.loraA("mix").allclose(of(a, 2, 5), 1e-5, 1e-5), what + ": A " + l.loraA("mix"));
            assertTrue(l.loraB("mix").allclose(of(b, 4, 2), 1e-5, 1e-5), what + ": B " + l.loraB("mix"));
            assertEquals(1.0, l.scaling("mix"), 0.0, "α = r: the weights live in the factors");
            assertEquals(List.of("default"), Lora.activeAdapters(m), "the new adapter is not active");
        }
    }

    @Test
    void tiesMatchesTorch() {
        check(Combination.TIES, 0.5, MajoritySign.TOTAL, TIES_TOTAL_5_A, TIES_TOTAL_5_B);
        check(Combination.TIES, 0.6, MajoritySign.FREQUENCY, TIES_FREQUENCY_6_A, TIES_FREQUENCY_6_B);
    }

    @Test
    void magnitudePruneMatchesTorch() {
        check(Combination.MAGNITUDE_PRUNE, 0.5, MajoritySign.TOTAL, MAGNITUDE_PRUNE_TOTAL_5_A, MAGNITUDE_PRUNE_TOTAL_5_B);
    }

    @Test
    void dareWithDensityOneMatchesTorch() {
        check(Combination.DARE_LINEAR, 1.0, MajoritySign.TOTAL, DARE_LINEAR_TOTAL_10_A, DARE_LINEAR_TOTAL_10_B);
        check(Combination.DARE_TIES, 1.0, MajoritySign.TOTAL, DARE_TIES_TOTAL_10_A, DARE_TIES_TOTAL_10_B);
    }

    @Test
    void svdVariantsMatchTorch() {
        Object[][] cases = {{Combination.TIES_SVD, 0.5, MajoritySign.TOTAL, TIES_SVD_TOTAL_5_DELTA},
                {Combination.MAGNITUDE_PRUNE_SVD, 0.4, MajoritySign.TOTAL, MAGNITUDE_PRUNE_SVD_TOTAL_4_DELTA},
                {Combination.DARE_TIES_SVD, 1.0, MajoritySign.FREQUENCY, DARE_TIES_SVD_FREQUENCY_10_DELTA}};
        for (Object[] c : cases) {
            try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open()) {
                Lora.addWeightedAdapter(m, List.of("default", "b"), WEIGHTS, "mix", (Combination) c[0], 2, (double) c[1], (MajoritySign) c[2]);
                LoraLayer l = (LoraLayer) m.get(0);
                assertEquals(2, l.config("mix").r());
                assertTrue(l.deltaWeight("mix").allclose(of((double[]) c[3], 4, 5), 1e-4, 1e-5), c[0] + ": ΔW " + l.deltaWeight("mix"));
            }
        }
        try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open()) {
            Lora.addAdapter(m, "r3", LoraConfig.of(3));
            NamedAdaptersTest.randomize((LoraLayer) m.get(0), "r3");
            Lora.addWeightedAdapter(m, List.of("default", "r3"), WEIGHTS, "mix", Combination.DARE_LINEAR_SVD, 0, 1.0, MajoritySign.TOTAL);
            Lora.addWeightedAdapter(m, List.of("default", "r3"), WEIGHTS, "full", Combination.DARE_LINEAR_SVD, 4, 1.0, MajoritySign.TOTAL);
            LoraLayer l = (LoraLayer) m.get(0);
            assertEquals(3, l.config("mix").r(), "svdRank 0: the largest rank");
            Tensor want = l.deltaWeight("default").mul(WEIGHTS[0]).add(l.deltaWeight("r3").mul(WEIGHTS[1]));
            assertTrue(l.deltaWeight("full").allclose(want, 1e-4, 1e-5), "rank min(out, in): Σ wᵢ·ΔWᵢ exactly (density 1)");
            assertThrows(IllegalArgumentException.class, () -> Lora.addWeightedAdapter(m, List.of("default", "r3"), WEIGHTS, "x",
                    Combination.TIES_SVD, 5, 0.5, MajoritySign.TOTAL), "rank above min(out, in)");
        }
    }

    @Test
    void oneAdapterIsCombinedLinearlyWithItsSignOnA() {
        try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open()) {
            LoraLayer l = (LoraLayer) m.get(0);
            Lora.addWeightedAdapter(m, List.of("default"), new double[] {-0.5}, "neg", Combination.TIES, 0, 0.2, MajoritySign.TOTAL);
            assertTrue(l.deltaWeight("neg").allclose(l.deltaWeight("default").mul(-0.5), 1e-5, 1e-6), "ΔW = w·ΔW₀, no pruning");
        }
    }

    @Test
    void darePrunesAtRandomAndRescales() {
        try (TensorScope s = TensorScope.open()) {
            Tensor t = Tensor.full(0.6, 200, 100);
            Torch.manualSeed(5);
            Tensor d = MergeUtils.dareLinear(List.of(t), new double[] {1}, 0.3);
            Torch.manualSeed(5);
            assertTrue(MergeUtils.dareLinear(List.of(t), new double[] {1}, 0.3).equal(d), "the mask follows the seed");
            float[] v = d.toFloatArray();
            int kept = 0;
            for (float x : v) {
                if (x != 0) {
                    kept++;
                    assertEquals(0.6 / 0.3, x, 1e-6, "kept values are rescaled by 1/density");
                }
            }
            assertEquals(0.3, kept / (double) v.length, 0.02, "about density of the values are kept");
            assertEquals(0.6, d.mean().item(), 0.02, "the expectation is kept");
            Tensor p = MergeUtils.prune(t, 0.3, PruneMethod.RANDOM, false);
            for (float x : p.toFloatArray()) assertTrue(x == 0f || x == 0.6f, "no rescaling unless asked");
            // DARE-TIES: every element is 0 or a mean of rescaled values of the elected sign.
            Tensor u = Tensor.full(-0.2, 200, 100);
            for (float x : MergeUtils.dareTies(List.of(t, u), new double[] {1, 1}, 0.5, MajoritySign.TOTAL).toFloatArray()) {
                assertTrue(x == 0f || Math.abs(x - 1.2f) < 1e-6 || Math.abs(x + 0.4f) < 1e-6, "value " + x);
            }
        }
    }

    @Test
    void magnitudePruningKeepsTheLargest() {
        try (TensorScope s = TensorScope.open()) {
            Tensor t = Tensor.of(new float[] {0.1f, -5f, 3f, -0.2f, 4f, 0f, -1f, 2f, 0.5f, -3.5f}, 2, 5);
            Tensor p = MergeUtils.prune(t, 0.6, PruneMethod.MAGNITUDE, false);
            assertArrayEquals(new float[] {0, -5f, 3f, 0, 4f, 0, -1f, 2f, 0, -3.5f}, p.toFloatArray(), "the 6 largest magnitudes");
            assertTrue(MergeUtils.prune(t, 1.0, PruneMethod.MAGNITUDE, false).equal(t), "density 1 keeps all");
            Tensor mask = MergeUtils.calculateMajoritySignMask(List.of(t, t.neg().mul(2)), MajoritySign.TOTAL);
            assertArrayEquals(new long[] {2, 2, 5}, mask.shape());
        }
    }

    @Test
    void badArgumentsAreRefused() {
        try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open()) {
            List<String> both = List.of("default", "b");
            assertThrows(IllegalArgumentException.class, () -> Lora.addWeightedAdapter(m, both, WEIGHTS, "x", Combination.TIES, 0));
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, both, WEIGHTS, "x", Combination.TIES, 0, 1.5, MajoritySign.TOTAL));
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, both, WEIGHTS, "x", Combination.DARE_TIES, 0, Double.NaN, MajoritySign.TOTAL));
            Lora.addAdapter(m, "r3", LoraConfig.of(3));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> Lora.addWeightedAdapter(m, List.of("default", "r3"), WEIGHTS, "x",
                    Combination.DARE_LINEAR, 0, 0.5, MajoritySign.TOTAL)).getMessage().contains("one rank"));
            assertFalse(Lora.adapterNames(m).contains("x"), "nothing was added");
        }
    }
}
