package dev.lora4j.lora;

import static dev.lora4j.lora.NamedAdaptersTest.randomize;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.List;
import org.junit.jupiter.api.Test;

/** PEFT's add_weighted_adapter: linear, cat and svd, checked against the closed forms of ΔW. */
class WeightedAdapterTest {

    private static Sequential twoAdapters(int rankB) {
        Sequential model = new Sequential(new Linear(7, 5));
        Lora.wrap(model, LoraConfig.of(2, 3));
        Lora.addAdapter(model, "b", LoraConfig.of(rankB, 2).withRslora(true));
        LoraLayer l = (LoraLayer) model.get(0);
        randomize(l, "default");
        randomize(l, "b");
        return model;
    }

    private static LoraLayer layer(Sequential m) {
        return (LoraLayer) m.get(0);
    }

    @Test
    void catIsTheExactWeightedSum() {
        Torch.manualSeed(11);
        try (Sequential m = twoAdapters(3); TensorScope s = TensorScope.open()) {
            LoraLayer l = layer(m);
            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {0.7, -1.3}, "mix", Combination.CAT, 0);
            assertEquals(5, l.config("mix").r(), "rank is the sum");
            assertEquals(1.0, l.scaling("mix"), 0.0, "the scales are folded into the factors");
            Tensor want = l.deltaWeight("default").mul(0.7).add(l.deltaWeight("b").mul(-1.3));
            assertTrue(l.deltaWeight("mix").allclose(want, 1e-5, 1e-6));
            assertEquals(List.of("default"), Lora.activeAdapters(m), "the new adapter is not active");
        }
    }

    @Test
    void linearMatchesPeftsFormula() {
        Torch.manualSeed(12);
        try (Sequential m = twoAdapters(2); TensorScope s = TensorScope.open()) {
            LoraLayer l = layer(m);
            double w1 = 0.5, w2 = 2.0;
            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {w1, w2}, "lin", Combination.LINEAR, 0);
            double f1 = Math.sqrt(w1 * l.scaling("default"));
            double f2 = Math.sqrt(w2 * l.scaling("b"));
            Tensor b = l.loraB("default").mul(f1).add(l.loraB("b").mul(f2));
            Tensor a = l.loraA("default").mul(f1).add(l.loraA("b").mul(f2));
            assertTrue(l.deltaWeight("lin").allclose(b.matmul(a), 1e-5, 1e-6), "(Σ√(w s) B)(Σ√(w s) A)");

            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, List.of("b"), new double[] {-1.0}, "neg", Combination.LINEAR, 0),
                    "√ of a negative weight: refused as PEFT does, not NaN factors");
            assertThrows(NullPointerException.class, () -> Lora.setAdapter(m, (String) null));
            Lora.addWeightedAdapter(m, List.of("b"), new double[] {3.0}, "one", Combination.LINEAR, 0);
            assertTrue(l.deltaWeight("one").allclose(l.deltaWeight("b").mul(3.0), 1e-5, 1e-6), "one adapter: w·ΔW");
        }
        try (Sequential m = twoAdapters(3)) {
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {1, 1}, "x", Combination.LINEAR, 0),
                    "linear needs one rank");
        }
    }

    @Test
    void svdIsTheBestLowRankApproximation() {
        Torch.manualSeed(13);
        try (Sequential m = twoAdapters(3); TensorScope s = TensorScope.open()) {
            LoraLayer l = layer(m);
            Tensor sum = l.deltaWeight("default").mul(0.5).add(l.deltaWeight("b"));
            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {0.5, 1.0}, "full", Combination.SVD, 5);
            assertTrue(l.deltaWeight("full").allclose(sum, 1e-4, 1e-5), "rank 5 ≥ rank of the sum: exact");

            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {0.5, 1.0}, "r2", Combination.SVD, 2);
            assertEquals(2, l.config("r2").r());
            // Eckart–Young: the error of the best rank-2 approximation is √(σ₃² + σ₄² + ...).
            float[] sv = Linalg.svd(sum).s().toFloatArray();
            double tail = 0;
            for (int i = 2; i < sv.length; i++) tail += (double) sv[i] * sv[i];
            double err = Math.sqrt(l.deltaWeight("r2").sub(sum).pow(2).sum().item());
            assertEquals(Math.sqrt(tail), err, 1e-4 * (1 + Math.sqrt(tail)));

            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {1, 1}, "dflt", Combination.SVD, 0);
            assertEquals(3, l.config("dflt").r(), "svd rank defaults to the largest adapter rank");
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, List.of("default", "zzz"), new double[] {1, 1}, "x", Combination.SVD, 0));
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, List.of("default"), new double[] {1, 1}, "x", Combination.SVD, 0));
            assertThrows(IllegalArgumentException.class,
                    () -> Lora.addWeightedAdapter(m, List.of("default"), new double[] {Double.NaN}, "x", Combination.CAT, 0));
        }
    }

    @Test
    void convAdaptersCombineInTheirOwnLayout() {
        Torch.manualSeed(14);
        try (Sequential m = new Sequential(new Conv2d(3, 4, 3)); TensorScope s = TensorScope.open()) {
            Lora.wrap(m, LoraConfig.of(2, 2));
            Lora.addAdapter(m, "b", LoraConfig.of(1, 1));
            LoraLayer l = layer(m);
            randomize(l, "default");
            randomize(l, "b");
            Tensor sum = l.deltaWeight("default").mul(2).add(l.deltaWeight("b"));
            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {2, 1}, "cat", Combination.CAT, 0);
            Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {2, 1}, "svd", Combination.SVD, 3);
            assertArrayEquals(new long[] {3, 3, 3, 3}, l.loraA("svd").shape());
            assertArrayEquals(new long[] {4, 3, 1, 1}, l.loraB("svd").shape());
            assertTrue(l.deltaWeight("cat").allclose(sum, 1e-5, 1e-6));
            assertTrue(l.deltaWeight("svd").allclose(sum, 1e-4, 1e-5));
        }
    }
}
