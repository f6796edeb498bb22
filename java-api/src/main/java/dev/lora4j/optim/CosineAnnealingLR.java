package dev.lora4j.optim;

/**
 * PyTorch's {@code CosineAnnealingLR} in its closed form:
 * {@code eta_min + (base_lr − eta_min) · (1 + cos(π · t / T_max)) / 2}, which falls from the
 * base rate to {@code etaMin} over {@code tMax} epochs (and, as PyTorch's, rises again after).
 *
 * <p>Ownership and threads: see {@link LRScheduler}.
 */
public final class CosineAnnealingLR extends LRScheduler {

    private final int tMax;
    private final double etaMin;

    /** {@code etaMin} 0, PyTorch's default. */
    public CosineAnnealingLR(Optimizer optimizer, int tMax) {
        this(optimizer, tMax, 0);
    }

    public CosineAnnealingLR(Optimizer optimizer, int tMax, double etaMin) {
        super(optimizer);
        this.tMax = positive("tMax", tMax);
        if (!(etaMin >= 0) || !Double.isFinite(etaMin)) throw new IllegalArgumentException("etaMin must be finite and >= 0, got " + etaMin);
        this.etaMin = etaMin;
        initialStep();
    }

    @Override
    protected double lrAt(int epoch, double baseLr) {
        return etaMin + (baseLr - etaMin) * (1 + Math.cos(Math.PI * epoch / tMax)) / 2;
    }
}
