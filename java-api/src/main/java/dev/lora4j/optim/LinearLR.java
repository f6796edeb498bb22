package dev.lora4j.optim;

/**
 * PyTorch's {@code LinearLR}: the factor on the base rate goes linearly from
 * {@code startFactor} to {@code endFactor} over {@code totalIters} epochs, then stays:
 * {@code base_lr · (start + (end − start) · min(t, total_iters) / total_iters)}.
 *
 * <p>Ownership and threads: see {@link LRScheduler}.
 */
public final class LinearLR extends LRScheduler {

    private final double startFactor;
    private final double endFactor;
    private final int totalIters;

    /** PyTorch's defaults: start factor 1/3, end factor 1, 5 iterations. */
    public LinearLR(Optimizer optimizer) {
        this(optimizer, 1.0 / 3, 1.0, 5);
    }

    /**
     * @throws IllegalArgumentException for a start factor outside (0, 1], an end factor outside
     *     [0, 1] (as PyTorch) or {@code totalIters <= 0}
     */
    public LinearLR(Optimizer optimizer, double startFactor, double endFactor, int totalIters) {
        super(optimizer);
        if (!(startFactor > 0 && startFactor <= 1)) throw new IllegalArgumentException("startFactor must be in (0, 1], got " + startFactor);
        if (!(endFactor >= 0 && endFactor <= 1)) throw new IllegalArgumentException("endFactor must be in [0, 1], got " + endFactor);
        this.startFactor = startFactor;
        this.endFactor = endFactor;
        this.totalIters = positive("totalIters", totalIters);
        initialStep();
    }

    @Override
    protected double lrAt(int epoch, double baseLr) {
        return baseLr * (startFactor + (endFactor - startFactor) * Math.min(totalIters, epoch) / totalIters);
    }
}
