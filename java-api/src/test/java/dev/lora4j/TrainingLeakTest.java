package dev.lora4j;

import static dev.lora4j.nn.Functional.crossEntropy;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.SGD;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/**
 * A million LoRA training steps (forward, loss, backward, optimizer step, zero grad) keep
 * resident memory flat and the safety-net counter at zero.
 *
 * <p>The step is training-step-sized in calls, not in FLOPs: one LoRA linear layer (8 → 4,
 * rank 2), a batch of 4 rows copied in from Java arrays, cross-entropy, plain SGD. Each step
 * makes every kind of native object a fine-tuning step makes (input and target tensors, the
 * forward's intermediates, an autograd graph, gradients on the LoRA factors, the optimizer's
 * in-place update); sizes are tiny so that the test measures per-step bookkeeping, not
 * arithmetic, and 10⁶ steps fit in CI's budget.
 *
 * <p>The bound: resident memory outside the Java heap and the JVM's other managed pools (as
 * {@link MemoryTest} measures it) may grow by at most 64 MiB between the end of a
 * 100,000-step warm-up and the end of the run. Leaking even the smallest object a step
 * creates (one 4-row input tensor: a TensorImpl, its storage and the handle) would cost well
 * over 200 MiB over the 900,000 measured steps.
 */
class TrainingLeakTest {

    private static final long BOUND = 64L << 20;
    private static final int WARM_UP = 100_000;
    private static final int STEPS = 1_000_000;

    @Test
    void millionLoraTrainingStepsStayFlat() throws IOException {
        long reclaimedBefore = Torch.reclaimedTensorCount();
        Torch.manualSeed(8);
        long t0 = System.nanoTime();
        long rssWarm;
        long rssEnd;
        double firstLoss;
        double lastLoss;
        try (Sequential model = new Sequential(new Linear(8, 4));
             Tensor x0 = Tensor.randn(4, 8)) {
            float[] x = x0.toFloatArray();
            long[] y = {0, 1, 2, 3};
            Lora.wrap(model, LoraConfig.of(2, 4));
            model.train();
            try (SGD opt = new SGD(model.trainableParameters(), 1e-2)) {
                firstLoss = step(model, opt, x, y);
                for (int i = 1; i < WARM_UP; i++) step(model, opt, x, y);
                rssWarm = MemoryTest.rss();
                for (int i = WARM_UP; i < STEPS - 1; i++) step(model, opt, x, y);
                lastLoss = step(model, opt, x, y);
                rssEnd = MemoryTest.rss();
            }
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf("training steps: native resident memory after %,d steps %d MiB, after %,d steps %d MiB"
                + " (grew %+d MiB, bound 64 MiB); %.1f s, %.1f us/step; loss %.4f -> %.4f%n",
                WARM_UP, rssWarm >> 20, STEPS, rssEnd >> 20, (rssEnd - rssWarm) >> 20, seconds, seconds * 1e6 / STEPS,
                firstLoss, lastLoss);
        assertTrue(rssEnd - rssWarm < BOUND,
                "resident memory grew by " + (rssEnd - rssWarm) / (1 << 20) + " MiB over " + (STEPS - WARM_UP) + " steps (bound 64 MiB)");
        assertEquals(reclaimedBefore, Torch.reclaimedTensorCount(), "the Cleaner had to free tensors");
        assertTrue(lastLoss < firstLoss, "the steps trained nothing: loss " + firstLoss + " -> " + lastLoss);
    }

    /** One training step in a scope; returns the loss. */
    private static double step(Sequential model, SGD opt, float[] x, long[] y) {
        try (TensorScope s = TensorScope.open()) {
            opt.zeroGrad();
            Tensor loss = crossEntropy(model.forward(Tensor.of(x, 4, 8)), Tensor.of(y, 4));
            loss.backward();
            opt.step();
            return loss.item();
        }
    }
}
