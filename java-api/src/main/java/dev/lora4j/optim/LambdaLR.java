package dev.lora4j.optim;

import java.util.Objects;
import java.util.function.IntToDoubleFunction;

/**
 * PyTorch's {@code LambdaLR}: the rate at epoch {@code t} is {@code base_lr · lr_lambda(t)}.
 * The factor must be finite and {@code >= 0}; otherwise {@link #step()} throws
 * {@link IllegalStateException} and leaves the optimizer's rate unchanged.
 *
 * <p>Ownership and threads: see {@link LRScheduler}.
 */
public final class LambdaLR extends LRScheduler {

    private final IntToDoubleFunction lrLambda;

    public LambdaLR(Optimizer optimizer, IntToDoubleFunction lrLambda) {
        super(optimizer);
        this.lrLambda = Objects.requireNonNull(lrLambda, "lrLambda");
        initialStep();
    }

    @Override
    protected double lrAt(int epoch, double baseLr) {
        return baseLr * lrLambda.applyAsDouble(epoch);
    }
}
