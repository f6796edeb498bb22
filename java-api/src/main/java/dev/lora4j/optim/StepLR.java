package dev.lora4j.optim;

/**
 * PyTorch's {@code StepLR}: the rate decays by {@code gamma} every {@code stepSize} epochs,
 * {@code base_lr · gamma^⌊t / step_size⌋}.
 *
 * <p>Ownership and threads: see {@link LRScheduler}.
 */
public final class StepLR extends LRScheduler {

    private final int stepSize;
    private final double gamma;

    /** {@code gamma} 0.1, PyTorch's default. */
    public StepLR(Optimizer optimizer, int stepSize) {
        this(optimizer, stepSize, 0.1);
    }

    public StepLR(Optimizer optimizer, int stepSize, double gamma) {
        super(optimizer);
        this.stepSize = positive("stepSize", stepSize);
        if (!(gamma >= 0) || !Double.isFinite(gamma)) throw new IllegalArgumentException("gamma must be finite and >= 0, got " + gamma);
        this.gamma = gamma;
        initialStep();
    }

    @Override
    protected double lrAt(int epoch, double baseLr) {
        return baseLr * Math.pow(gamma, epoch / stepSize);
    }
}
