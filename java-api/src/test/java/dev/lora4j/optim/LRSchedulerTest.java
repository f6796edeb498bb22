package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import java.util.List;
import java.util.function.Function;
import java.util.function.IntToDoubleFunction;
import org.junit.jupiter.api.Test;

/**
 * Learning-rate schedules: the sequence of rates against the closed forms PyTorch documents
 * (and Hugging Face's lambdas), written out here independently, and the optimizer actually
 * stepping with the scheduled rate.
 */
class LRSchedulerTest {

    private static final double BASE = 0.1;
    private static final int STEPS = 25;

    /** Runs {@code make} on a fresh SGD with rate {@link #BASE} and checks {@code STEPS} rates against {@code expected}. */
    private static void check(Function<Optimizer, LRScheduler> make, IntToDoubleFunction expected) {
        try (Tensor p = Tensor.of(new double[] {1.0}, 1).requiresGrad_(true); SGD opt = new SGD(List.of(p), BASE)) {
            LRScheduler s = make.apply(opt);
            assertEquals(BASE, s.baseLr());
            for (int t = 0; t < STEPS; t++) {
                assertEquals(t, s.lastEpoch());
                assertEquals(expected.applyAsDouble(t), s.getLastLr(), 1e-15, "epoch " + t);
                assertEquals(s.getLastLr(), opt.lr(), 0.0, "the optimizer's rate at epoch " + t);
                s.step();
            }
        }
    }

    @Test
    void stepLR() {
        check(o -> new StepLR(o, 3, 0.5), t -> BASE * Math.pow(0.5, t / 3));
        check(o -> new StepLR(o, 4), t -> t < 4 ? BASE : t < 8 ? BASE * 0.1 : t < 12 ? BASE * 0.01 : BASE * Math.pow(0.1, t / 4));
    }

    @Test
    void linearLR() {
        // PyTorch's example: factor 0.5 over 4 epochs gives 0.05, 0.0625, 0.075, 0.0875, then 0.1 (base 0.1)
        double[] doc = {0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1};
        check(o -> new LinearLR(o, 0.5, 1.0, 4), t -> t < doc.length ? doc[t] : 0.1);
        check(LinearLR::new, t -> BASE * (1.0 / 3 + (1 - 1.0 / 3) * Math.min(t, 5) / 5));
    }

    @Test
    void cosineAnnealingLR() {
        check(o -> new CosineAnnealingLR(o, 10, 0.01), t -> 0.01 + (BASE - 0.01) * (1 + Math.cos(Math.PI * t / 10)) / 2);
        check(o -> new CosineAnnealingLR(o, 10), t -> t == 0 ? BASE : t == 5 ? BASE / 2 : t == 10 ? 0.0 : t == 20 ? BASE
                : BASE * (1 + Math.cos(Math.PI * t / 10)) / 2);
    }

    @Test
    void lambdaLR() {
        check(o -> new LambdaLR(o, t -> Math.pow(0.95, t)), t -> BASE * Math.pow(0.95, t));
    }

    @Test
    void huggingFaceLinearWithWarmup() {
        // warm-up 4 of 20 steps: 0, .025, .05, .075, .1, then down by .1/16 a step to 0 at step 20, and 0 after
        check(o -> Schedulers.linearWithWarmup(o, 4, 20), t -> t < 4 ? BASE * t / 4 : t <= 20 ? BASE * (20 - t) / 16.0 : 0.0);
        check(o -> Schedulers.linearWithWarmup(o, 0, 10), t -> BASE * Math.max(0, 10 - t) / 10.0);
    }

    @Test
    void huggingFaceCosineWithWarmup() {
        // warm-up 5 of 15 steps: 0, .02, ..., .1 at step 5, half (.05) at step 10, 0 at step 15, then (as HF) up again
        check(o -> Schedulers.cosineWithWarmup(o, 5, 15), t -> t < 5 ? BASE * t / 5 : t == 10 ? BASE / 2 : t == 15 ? 0.0
                : BASE * 0.5 * (1 + Math.cos(Math.PI * (t - 5) / 10.0)));
        check(o -> Schedulers.cosineWithWarmup(o, 0, 10, 1.0), t -> BASE * 0.5 * (1 + Math.cos(2 * Math.PI * t / 10.0)));
        check(o -> Schedulers.constantWithWarmup(o, 3), t -> t < 3 ? BASE * t / 3 : BASE);
    }

    /** One SGD step with gradient c at each scheduled rate: p moves by exactly −lr·c. */
    @Test
    void theOptimizerStepsWithTheScheduledRate() {
        double[] c = {3.0, -1.0};
        try (Tensor p = Tensor.of(new double[] {1.0, -2.0}, 2).requiresGrad_(true); SGD opt = new SGD(List.of(p), 0.4)) {
            LRScheduler s = Schedulers.linearWithWarmup(opt, 2, 4); // rates 0, 0.2, 0.4, 0.2, 0
            double[] rates = {0, 0.2, 0.4, 0.2, 0};
            double[] expected = {1.0, -2.0};
            for (double lr : rates) {
                assertEquals(lr, opt.lr(), 1e-15);
                opt.zeroGrad();
                try (Tensor ct = Tensor.of(c, 2); Tensor prod = p.mul(ct); Tensor loss = prod.sum()) {
                    loss.backward();
                }
                opt.step();
                for (int i = 0; i < 2; i++) expected[i] -= lr * c[i];
                assertArrayEquals(expected, p.toDoubleArray(), 1e-15);
                s.step();
            }
        }
    }

    @Test
    void badArgumentsAreRefusedByName() {
        try (Tensor p = Tensor.of(new double[] {1.0}, 1).requiresGrad_(true); SGD opt = new SGD(List.of(p), BASE)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new StepLR(opt, 0)).getMessage().contains("stepSize"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new LinearLR(opt, 0, 1, 3)).getMessage().contains("startFactor"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new LinearLR(opt, 0.5, 1.5, 3)).getMessage().contains("endFactor"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new CosineAnnealingLR(opt, 0)).getMessage().contains("tMax"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> Schedulers.linearWithWarmup(opt, -1, 5)).getMessage().contains("numWarmupSteps"));
            assertThrows(NullPointerException.class, () -> new LambdaLR(opt, null));
            // a negative factor is refused and leaves the rate as it was
            assertThrows(IllegalStateException.class, () -> new LambdaLR(opt, t -> -1));
            assertEquals(BASE, opt.lr(), 0.0);
        }
    }
}
