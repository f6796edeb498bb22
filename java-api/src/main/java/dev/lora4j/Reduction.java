package dev.lora4j;

/**
 * How a loss reduces over the batch, as PyTorch's {@code reduction=} argument.
 *
 * <p>Immutable and thread-safe.
 */
public enum Reduction {
    /** One loss per element. */
    NONE,
    /** The mean (PyTorch's default). */
    MEAN,
    /** The sum. */
    SUM
}
