package dev.lora4j.data;

import dev.lora4j.Tensor;
import dev.lora4j.internal.Calls;
import java.util.Arrays;
import java.util.Objects;

/**
 * Inputs and targets indexed along their first dimension, as PyTorch's {@code TensorDataset}.
 * Batches are gathered with one {@code index_select} per tensor (or a zero-copy slice when
 * not shuffled), never sample by sample.
 *
 * <p>Owns its two tensors (they leave any scope) and frees them on {@link #close()}.
 * Reading (loaders, batches) is thread-safe; closing is not.
 */
public final class TensorDataset implements AutoCloseable {

    private final Tensor inputs;
    private final Tensor targets;

    /** Takes ownership of {@code inputs} and {@code targets}, which must have the same length. */
    public TensorDataset(Tensor inputs, Tensor targets) {
        Objects.requireNonNull(inputs, "inputs");
        Objects.requireNonNull(targets, "targets");
        if (inputs.dim() == 0 || targets.dim() == 0 || inputs.size(0) != targets.size(0)) {
            throw new IllegalArgumentException("inputs " + Arrays.toString(inputs.shape()) + " and targets "
                    + Arrays.toString(targets.shape()) + " must have the same first dimension");
        }
        Calls.own(inputs);
        Calls.own(targets);
        this.inputs = inputs;
        this.targets = targets;
    }

    /** Number of samples. */
    public long size() {
        return inputs.size(0);
    }

    /** All inputs (owned by the dataset: do not close). */
    public Tensor inputs() {
        return inputs;
    }

    /** All targets (owned by the dataset: do not close). */
    public Tensor targets() {
        return targets;
    }

    /** The samples whose target is one of {@code classes} (integer targets), as a new dataset. */
    public TensorDataset filterClasses(long... classes) {
        Objects.requireNonNull(classes, "classes");
        long[] t = targets.toLongArray();
        long[] keep = new long[t.length];
        int n = 0;
        for (int i = 0; i < t.length; i++) {
            for (long c : classes) {
                if (t[i] == c) {
                    keep[n++] = i;
                    break;
                }
            }
        }
        try (Tensor idx = Tensor.of(Arrays.copyOf(keep, n), n)) {
            return new TensorDataset(inputs.indexSelect(0, idx), targets.indexSelect(0, idx));
        }
    }

    /** The samples at {@code indices}, gathered in one call per tensor; the caller owns the batch. */
    public Batch batch(long[] indices) {
        try (Tensor idx = Tensor.of(indices, indices.length)) {
            Tensor x = inputs.indexSelect(0, idx);
            return new Batch(x, targets.indexSelect(0, idx));
        }
    }

    /** Samples {@code start} .. {@code start+length-1} as views of the dataset's memory. */
    public Batch slice(long start, long length) {
        Tensor x = inputs.narrow(0, start, length);
        return new Batch(x, targets.narrow(0, start, length));
    }

    /** A loader over this dataset. */
    public DataLoader loader(int batchSize, boolean shuffle, long seed, boolean dropLast) {
        return new DataLoader(this, batchSize, shuffle, seed, dropLast);
    }

    /** Number of samples per class for integer targets in 0..numClasses-1. */
    public long[] classCounts(int numClasses) {
        long[] counts = new long[numClasses];
        for (long t : targets.toLongArray()) {
            if (t >= 0 && t < numClasses) counts[(int) t]++;
        }
        return counts;
    }

    @Override
    public void close() {
        inputs.close();
        targets.close();
    }
}
