package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * A model in eval mode, with unmerged or merged LoRA adapters, answers 8 threads at once
 * with outputs bit-identical to serial calls on the same inputs.
 */
class ConcurrencyTest {

    private static final int THREADS = 8;
    private static final int CALLS = 100;

    @Test
    void evalForwardFromEightThreadsIsBitIdenticalToSerial() throws Exception {
        Torch.manualSeed(77);
        try (Sequential model = new Sequential(new Linear(32, 64), Activation.gelu(), new Linear(64, 10))) {
            Lora.wrap(model, LoraConfig.of(4, 8));
            for (LoraLayer l : Lora.loraLayers(model).values()) {
                try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
                    ((LoraLinear) l).loraB().copy_(Tensor.randn(((LoraLinear) l).loraB().shape()));
                }
            }
            model.eval();
            for (boolean merged : new boolean[] {false, true}) {
                if (merged) Lora.merge(model, true);
                List<float[]> inputs = new ArrayList<>();
                List<float[]> expected = new ArrayList<>();
                for (int i = 0; i < THREADS * CALLS; i++) {
                    try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                        Tensor x = Tensor.randn(4, 32);
                        inputs.add(x.toFloatArray());
                        expected.add(model.forward(x).toFloatArray());
                    }
                }
                ExecutorService pool = Executors.newFixedThreadPool(THREADS);
                try {
                    List<Future<Integer>> done = new ArrayList<>();
                    for (int t = 0; t < THREADS; t++) {
                        int first = t * CALLS;
                        done.add(pool.submit(() -> {
                            int same = 0;
                            for (int i = first; i < first + CALLS; i++) {
                                try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                                    float[] y = model.forward(Tensor.of(inputs.get(i), 4, 32)).toFloatArray();
                                    if (java.util.Arrays.equals(y, expected.get(i))) same++;
                                }
                            }
                            return same;
                        }));
                    }
                    for (Future<Integer> f : done) assertEquals(CALLS, f.get(), "merged=" + merged);
                } finally {
                    pool.shutdown();
                }
            }
        }
    }
}
