package dev.lora4j.optim;

import java.util.Objects;

/**
 * A learning-rate schedule over an {@link Optimizer}, as PyTorch's
 * {@code torch.optim.lr_scheduler.LRScheduler}: the constructor records the optimizer's current
 * learning rate as the base rate and sets the rate of epoch 0; each {@link #step()} advances
 * {@link #lastEpoch()} by one and sets the rate of the new epoch on the optimizer. Call it
 * after {@link Optimizer#step()}, as in PyTorch.
 *
 * <p>Every schedule here is computed from its closed form (PyTorch's
 * {@code _get_closed_form_lr}, or the lambda of Hugging Face's schedules) from the base rate
 * and the epoch, so it does not drift over many steps. Unlike PyTorch's chainable form, two
 * schedulers on one optimizer do not compose: each sets the rate it computes.
 *
 * <p>Ownership: a scheduler does not own its optimizer (closing the optimizer is the caller's
 * business; stepping a scheduler of a closed optimizer throws {@link IllegalStateException}).
 * Thread-safety: none; a scheduler belongs to the thread that trains with its optimizer.
 */
public abstract class LRScheduler {

    private final Optimizer optimizer;
    private final double baseLr;
    private int lastEpoch = -1;
    private double lastLr;

    /** Records the optimizer's current rate as the base rate; subclasses call {@link #initialStep()} once set up. */
    protected LRScheduler(Optimizer optimizer) {
        this.optimizer = Objects.requireNonNull(optimizer, "optimizer");
        this.baseLr = optimizer.lr();
    }

    /** Sets the rate of epoch 0 (PyTorch's {@code _initial_step}); subclass constructors call it last. */
    protected final void initialStep() {
        if (lastEpoch != -1) throw new IllegalStateException("initialStep called twice");
        step();
    }

    /** The rate at {@code epoch} (0, 1, ...) for base rate {@code baseLr}: the schedule's closed form. */
    protected abstract double lrAt(int epoch, double baseLr);

    /** Advances one epoch (or one training step, for per-step schedules) and sets its rate on the optimizer. */
    public final void step() {
        if (lastEpoch == Integer.MAX_VALUE) throw new IllegalStateException("lastEpoch overflows");
        int epoch = lastEpoch + 1;
        double lr = lrAt(epoch, baseLr);
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw new IllegalStateException(getClass().getSimpleName() + " computed learning rate " + lr + " at epoch " + epoch);
        }
        optimizer.setLr(lr);
        lastEpoch = epoch;
        lastLr = lr;
    }

    /** The rate this scheduler last set (PyTorch's {@code get_last_lr()}, for the one parameter group). */
    public final double getLastLr() {
        return lastLr;
    }

    /** The number of {@link #step()} calls since construction (0 right after it), as PyTorch's {@code last_epoch}. */
    public final int lastEpoch() {
        return lastEpoch;
    }

    /** The base rate: the optimizer's rate when this scheduler was made (PyTorch's {@code base_lrs[0]}). */
    public final double baseLr() {
        return baseLr;
    }

    /** The optimizer whose rate this scheduler sets. */
    public final Optimizer optimizer() {
        return optimizer;
    }

    static int positive(String name, int v) {
        if (v <= 0) throw new IllegalArgumentException(name + " must be > 0, got " + v);
        return v;
    }

    static int nonNegative(String name, int v) {
        if (v < 0) throw new IllegalArgumentException(name + " must be >= 0, got " + v);
        return v;
    }

    static double finite(String name, double v) {
        if (!Double.isFinite(v)) throw new IllegalArgumentException(name + " must be finite, got " + v);
        return v;
    }
}
