package dev.lora4j.dylora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Linear;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** A DyLoRA adapter served at a rank chosen per call, by many threads at once. */
class DyLoraServingTest {

    @Test
    void eachCallChoosesItsRankWithoutChangingTheLayer() throws Exception {
        Torch.manualSeed(31);
        try (DyLoraLinear layer = new DyLoraLinear(new Linear(10, 6), LoraConfig.of(5, 5)); TensorScope s = TensorScope.open()) {
            try (var ng = Torch.noGrad()) {
                layer.loraB().copy_(Tensor.randn(6, 5));
            }
            layer.eval();
            Tensor x = Tensor.randn(3, 10);
            List<float[]> expected = new ArrayList<>();
            for (int b = 1; b <= 5; b++) {
                layer.setRank(b);
                expected.add(layer.forward(x).toFloatArray());
            }
            layer.setRank(2);
            ExecutorService pool = Executors.newFixedThreadPool(5);
            try {
                List<Future<Boolean>> results = new ArrayList<>();
                for (int t = 0; t < 5; t++) {
                    int b = t + 1;
                    results.add(pool.submit(() -> {
                        boolean ok = true;
                        for (int i = 0; i < 50; i++) {
                            try (TensorScope ts = TensorScope.open(); var ng = Torch.noGrad()) {
                                ok &= java.util.Arrays.equals(expected.get(b - 1), layer.forward(x, b).toFloatArray());
                            }
                        }
                        return ok;
                    }));
                }
                for (Future<Boolean> f : results) assertTrue(f.get());
            } finally {
                pool.shutdown();
            }
            assertEquals(2, layer.rank(), "per-call ranks leave the layer's rank alone");
            assertThrows(IllegalArgumentException.class, () -> layer.forward(x, 6));
            layer.merge();
            assertThrows(IllegalStateException.class, () -> layer.forward(x, 3));
        }
    }

    @Test
    void modelLevelRankPerCall() {
        Torch.manualSeed(32);
        try (var model = new dev.lora4j.nn.Sequential(new Linear(8, 6), dev.lora4j.nn.Activation.relu(), new Linear(6, 3));
             TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            DyLora.wrap(model, LoraConfig.of(4, 4));
            for (var m : model.namedModules().values()) {
                if (m instanceof DyLoraLayer d) d.loraB().copy_(Tensor.randn(d.loraB().shape()));
            }
            model.eval();
            Tensor x = Tensor.randn(5, 8);
            for (int b = 1; b <= 4; b++) {
                DyLora.setRank(model, b);
                Tensor expected = model.forward(x);
                DyLora.setRank(model, 4);
                assertTrue(java.util.Arrays.equals(expected.toFloatArray(), DyLora.forward(model, x, b).toFloatArray()), "rank " + b);
            }
            assertEquals(4, ((DyLoraLayer) model.get(0)).rank(), "the layers' rank is untouched");
            assertThrows(IllegalArgumentException.class, () -> DyLora.forward(model, x, 5));
            assertThrows(IllegalArgumentException.class, () -> DyLora.forward(model, x, 0));
            try (var plain = new Linear(2, 2)) {
                assertThrows(IllegalArgumentException.class, () -> DyLora.forward(plain, Tensor.randn(1, 2), 1));
            }
        }
    }
}
