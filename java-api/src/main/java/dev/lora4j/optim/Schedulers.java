package dev.lora4j.optim;

/**
 * Hugging Face Transformers' schedules ({@code transformers.optimization}), as
 * {@link LambdaLR}s stepped once per training step: linear warm-up from 0 to the base rate
 * over {@code numWarmupSteps}, then the schedule's decay until {@code numTrainingSteps}.
 *
 * <p>Ownership and threads: see {@link LRScheduler}. Stateless.
 */
public final class Schedulers {

    private Schedulers() {}

    /**
     * {@code get_linear_schedule_with_warmup}: factor {@code t / max(1, warmup)} during warm-up,
     * then {@code max(0, (total − t) / max(1, total − warmup))}.
     */
    public static LambdaLR linearWithWarmup(Optimizer optimizer, int numWarmupSteps, int numTrainingSteps) {
        check(numWarmupSteps, numTrainingSteps);
        return new LambdaLR(optimizer, t -> t < numWarmupSteps
                ? (double) t / Math.max(1, numWarmupSteps)
                : Math.max(0.0, (double) (numTrainingSteps - t) / Math.max(1, numTrainingSteps - numWarmupSteps)));
    }

    /** {@code get_cosine_schedule_with_warmup} with HF's default half cycle (from the base rate down to 0). */
    public static LambdaLR cosineWithWarmup(Optimizer optimizer, int numWarmupSteps, int numTrainingSteps) {
        return cosineWithWarmup(optimizer, numWarmupSteps, numTrainingSteps, 0.5);
    }

    /**
     * {@code get_cosine_schedule_with_warmup}: factor {@code t / max(1, warmup)} during warm-up,
     * then {@code max(0, (1 + cos(π · 2 · numCycles · progress)) / 2)} with
     * {@code progress = (t − warmup) / max(1, total − warmup)}.
     */
    public static LambdaLR cosineWithWarmup(Optimizer optimizer, int numWarmupSteps, int numTrainingSteps, double numCycles) {
        check(numWarmupSteps, numTrainingSteps);
        LRScheduler.finite("numCycles", numCycles);
        return new LambdaLR(optimizer, t -> {
            if (t < numWarmupSteps) return (double) t / Math.max(1, numWarmupSteps);
            double progress = (double) (t - numWarmupSteps) / Math.max(1, numTrainingSteps - numWarmupSteps);
            return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * numCycles * 2.0 * progress)));
        });
    }

    /** {@code get_constant_schedule_with_warmup}: factor {@code t / max(1, warmup)} during warm-up, then 1. */
    public static LambdaLR constantWithWarmup(Optimizer optimizer, int numWarmupSteps) {
        LRScheduler.nonNegative("numWarmupSteps", numWarmupSteps);
        return new LambdaLR(optimizer, t -> t < numWarmupSteps ? (double) t / Math.max(1.0, numWarmupSteps) : 1.0);
    }

    private static void check(int warmup, int total) {
        LRScheduler.nonNegative("numWarmupSteps", warmup);
        LRScheduler.nonNegative("numTrainingSteps", total);
    }
}
