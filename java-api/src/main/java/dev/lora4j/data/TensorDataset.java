package dev.lora4j.data;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.internal.Calls;
import java.lang.foreign.MemorySegment;
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

    /**
     * The samples whose target is one of {@code classes}, as a new dataset.
     *
     * @throws IllegalArgumentException when the targets are not a vector of integers (class labels)
     */
    public TensorDataset filterClasses(long... classes) {
        Objects.requireNonNull(classes, "classes");
        long[] t = classLabels("filterClasses");
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

    /**
     * The samples at {@code indices}, gathered in one call per tensor; the caller owns the batch
     * (it joins the caller's {@link TensorScope} when one is open: taking batches inside the
     * training step's scope is the cheapest way, see {@link DataLoader}).
     */
    public Batch batch(long[] indices) {
        Objects.requireNonNull(indices, "indices");
        long n = size();
        for (int i = 0; i < indices.length; i++) {
            if (indices[i] < 0 || indices[i] >= n)
                throw new IllegalArgumentException("indices[" + i + "] = " + indices[i] + " is outside the dataset's samples 0.." + (n - 1));
        }
        return batch(indices, 0, indices.length);
    }

    /** The samples at {@code order[from .. from+length-1]}, without copying that range on the Java side. */
    Batch batch(long[] order, int from, int length) {
        Objects.checkFromIndexSize(from, length, order.length);
        // The index tensor lives only for the two gathers: in a scope of its own, so that it is
        // never an unowned tensor (no safety-net registration, no native-budget accounting).
        try (TensorScope local = TensorScope.open()) {
            Tensor idx = Tensor.copyOf(MemorySegment.ofArray(order).asSlice(8L * from, 8L * length), DType.INT64, length);
            return gather(idx, true);
        }
    }

    /**
     * The samples at the positions {@code indices} holds (an int64 or int32 vector, for example
     * a {@code narrow} of a permutation tensor), gathered with one {@code index_select} per
     * tensor; the caller owns the batch (it joins the caller's scope when one is open).
     *
     * @throws IllegalArgumentException when {@code indices} is not a vector
     * @throws dev.lora4j.TorchException when an index is out of range
     */
    public Batch batch(Tensor indices) {
        Objects.requireNonNull(indices, "indices");
        if (indices.dim() != 1) throw new IllegalArgumentException("indices must be a vector, got shape " + Arrays.toString(indices.shape()));
        return gather(indices, false);
    }

    /** index_select of both tensors; {@code keep}: move the results out of the (local) scope they were made in. */
    private Batch gather(Tensor idx, boolean keep) {
        Tensor x = inputs.indexSelect(0, idx);
        Tensor y;
        try {
            y = targets.indexSelect(0, idx);
        } catch (RuntimeException e) {
            if (!keep) x.close();
            throw e;
        }
        return keep ? new Batch(x.keep(), y.keep()) : new Batch(x, y);
    }

    /**
     * Samples {@code start} .. {@code start+length-1} as views of the dataset's memory.
     *
     * @throws IllegalArgumentException unless {@code 0 <= start}, {@code 0 <= length} and
     *     {@code start + length <= size()} (a negative start does not count from the end)
     */
    public Batch slice(long start, long length) {
        long n = size();
        if (start < 0 || length < 0 || start > n || length > n - start)
            throw new IllegalArgumentException("slice(start " + start + ", length " + length + ") must lie within the dataset's "
                    + n + " samples: 0 <= start, 0 <= length, start + length <= " + n);
        Tensor x = inputs.narrow(0, start, length);
        return new Batch(x, targets.narrow(0, start, length));
    }

    /** A loader over this dataset. */
    public DataLoader loader(int batchSize, boolean shuffle, long seed, boolean dropLast) {
        return new DataLoader(this, batchSize, shuffle, seed, dropLast);
    }

    /**
     * Number of samples per class, for integer targets in 0..numClasses-1.
     *
     * @throws IllegalArgumentException when {@code numClasses} is negative, when the targets are
     *     not a vector of integers, or when a target is outside 0..numClasses-1
     */
    public long[] classCounts(int numClasses) {
        if (numClasses < 0) throw new IllegalArgumentException("numClasses must be >= 0, got " + numClasses);
        long[] counts = new long[numClasses];
        long[] t = classLabels("classCounts");
        for (int i = 0; i < t.length; i++) {
            if (t[i] < 0 || t[i] >= numClasses)
                throw new IllegalArgumentException("target " + t[i] + " of sample " + i + " is outside 0..numClasses-1 (numClasses " + numClasses + ")");
            counts[(int) t[i]]++;
        }
        return counts;
    }

    /** The targets as class labels: refuses float targets (no truncation) and targets that are not a vector. */
    private long[] classLabels(String method) {
        if (targets.dim() != 1 || targets.dtype().isFloatingPoint() || targets.dtype() == DType.BOOL)
            throw new IllegalArgumentException(method + " needs class labels: targets must be a vector of integers, got "
                    + targets.dtype() + " of shape " + Arrays.toString(targets.shape()));
        return targets.toLongArray();
    }

    @Override
    public void close() {
        inputs.close();
        targets.close();
    }
}
