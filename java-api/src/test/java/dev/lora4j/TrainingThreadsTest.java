package dev.lora4j;

import static dev.lora4j.nn.Functional.crossEntropy;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The supported way to train from several threads: one model (and its optimizer) per thread.
 * Two LoRA models trained at the same time on two threads end bit-identical to the same
 * training done serially: nothing is shared between models, and grad mode and scopes are per
 * thread. (One model trained from two threads at once is not supported; see the README's
 * "Threads" section.)
 */
class TrainingThreadsTest {

    private static final int STEPS = 300;

    private static Sequential model(long seed) {
        Torch.manualSeed(seed);
        Sequential m = new Sequential(new Linear(12, 16), Activation.relu(), new Linear(16, 3));
        Lora.wrap(m, LoraConfig.of(2, 4));
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Lora.loraLayers(m).values().forEach(l -> l.loraB().copy_(Tensor.randn(l.loraB().shape()).mul(0.1)));
        }
        return m;
    }

    /** Trains {@code m} for {@link #STEPS} steps on fixed data; returns its LoRA factors, flattened. */
    private static List<float[]> train(Sequential m, long dataSeed) {
        java.util.Random rnd = new java.util.Random(dataSeed);
        float[] x = new float[8 * 12];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        long[] y = new long[8];
        for (int i = 0; i < y.length; i++) y[i] = rnd.nextInt(3);
        m.train();
        try (AdamW opt = new AdamW(m.trainableParameters(), 1e-2)) {
            for (int i = 0; i < STEPS; i++) {
                try (TensorScope s = TensorScope.open()) {
                    opt.zeroGrad();
                    crossEntropy(m.forward(Tensor.of(x, 8, 12)), Tensor.of(y, 8)).backward();
                    opt.step();
                }
            }
        }
        List<float[]> out = new ArrayList<>();
        try (TensorScope s = TensorScope.open()) {
            Lora.loraStateDict(m, LoraConfig.Bias.NONE).values().forEach(t -> out.add(t.toFloatArray()));
        }
        return out;
    }

    @Test
    void twoModelsTrainedOnTwoThreadsAtOnceEndAsWhenTrainedSerially() throws Exception {
        List<List<float[]>> serial = new ArrayList<>();
        for (int k = 0; k < 2; k++) {
            try (Sequential m = model(10 + k)) {
                serial.add(train(m, 20 + k));
            }
        }
        Sequential[] models = {model(10), model(11)};
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<List<float[]>>> done = new ArrayList<>();
            for (int k = 0; k < 2; k++) {
                int kk = k;
                done.add(pool.submit(() -> {
                    // Grad mode is per thread: a no-grad scope on this thread does not reach the other one.
                    try (var ng = Torch.noGrad()) {
                        assertFalse(Torch.isGradEnabled());
                    }
                    return train(models[kk], 20 + kk);
                }));
            }
            for (int k = 0; k < 2; k++) {
                List<float[]> got = done.get(k).get();
                assertEquals(serial.get(k).size(), got.size());
                for (int i = 0; i < got.size(); i++) {
                    assertArrayEquals(serial.get(k).get(i), got.get(i), "model " + k + ", factor " + i);
                }
            }
        } finally {
            pool.shutdown();
            for (Sequential m : models) m.close();
        }
        assertTrue(Torch.isGradEnabled(), "this thread's grad mode is untouched");
    }
}
