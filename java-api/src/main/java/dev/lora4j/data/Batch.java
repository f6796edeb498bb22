package dev.lora4j.data;

import dev.lora4j.Tensor;

/**
 * One batch of inputs and targets; closing frees both. Owned by whoever received it; reading
 * it from several threads is safe, closing it while another thread reads it is not.
 */
public record Batch(Tensor inputs, Tensor targets) implements AutoCloseable {

    /** Number of samples in the batch. */
    public long size() {
        return inputs.size(0);
    }

    @Override
    public void close() {
        inputs.close();
        targets.close();
    }
}
