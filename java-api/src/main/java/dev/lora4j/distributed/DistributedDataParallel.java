package dev.lora4j.distributed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Data-parallel training of a module over a {@link ProcessGroup}, as PyTorch's
 * {@code DistributedDataParallel}: every rank holds a full replica and trains on its own shard
 * of each global batch (see {@link dev.lora4j.data.DistributedSampler}); after each backward the
 * gradients are averaged across the ranks, so every replica takes the same optimizer step and
 * the replicas stay identical.
 *
 * <ul>
 *   <li>At construction the ranks check that their modules have the same parameters (names,
 *       shapes, dtypes, which ones train), then rank 0's parameters and buffers are broadcast to
 *       the others.
 *   <li>{@link #backward(Tensor)} runs the backward pass and, as soon as it has finished, averages
 *       the trainable parameters' gradients in one bucketed all-reduce: they are flattened into
 *       one buffer (LoRA gradients are small), reduced with one Gloo call, and copied back. The
 *       optimizer then steps as in single-process training.
 * </ul>
 * With the loss a mean over the batch, {@code N} ranks with batch {@code B} each compute the same
 * update as one process with batch {@code N·B}, up to float32 round-off.
 *
 * <h2>Ownership</h2>
 * The wrapper owns nothing: the module and the group stay the caller's to close. The set of
 * trainable parameters is fixed at construction (freeze or unfreeze before wrapping).
 *
 * <h2>Thread-safety</h2>
 * As the module's training: one thread at a time.
 */
public final class DistributedDataParallel {

    private final Module module;
    private final ProcessGroup group;
    private final List<Tensor> trainable;
    private long communicationNanos;
    private long synchronizations;

    /**
     * Wraps {@code module} for training in {@code group}; collective, so every rank must call it.
     *
     * @throws IllegalStateException when the ranks' modules differ in their parameters
     * @throws DistributedException when a rank fails or does not arrive within the group's timeout
     */
    public DistributedDataParallel(Module module, ProcessGroup group) {
        this.module = Objects.requireNonNull(module, "module");
        this.group = Objects.requireNonNull(group, "group");
        Map<String, Tensor> params = module.namedParameters();
        // Each tensor once (a module used at two places shares its parameters), as PyTorch's DDP.
        this.trainable = List.copyOf(module.trainableParameters());
        if (trainable.isEmpty()) throw new IllegalArgumentException("module has no trainable parameters");
        verifySameParameters(params);
        List<Tensor> state = new ArrayList<>(module.parameters());
        state.addAll(module.namedBuffers().values());
        group.broadcast(state, 0);
    }

    /** The wrapped module. */
    public Module module() {
        return module;
    }

    /** The process group. */
    public ProcessGroup group() {
        return group;
    }

    /** The trainable parameters whose gradients are averaged (give these to the optimizer). */
    public List<Tensor> trainableParameters() {
        return trainable;
    }

    /** The module's forward pass. */
    public Tensor forward(Tensor input) {
        return module.forward(input);
    }

    /** Backpropagates from the one-element {@code loss}, then averages the gradients across the ranks. */
    public void backward(Tensor loss) {
        Objects.requireNonNull(loss, "loss").backward();
        synchronizeGradients();
    }

    /**
     * Averages the trainable parameters' gradients across the ranks in one bucketed all-reduce
     * (for callers that run backward themselves; {@link #backward(Tensor)} calls it).
     */
    public void synchronizeGradients() {
        long t0 = System.nanoTime();
        group.allReduceGradients(trainable, ReduceOp.AVG);
        communicationNanos += System.nanoTime() - t0;
        synchronizations++;
    }

    /** Wall time spent in gradient all-reduces so far, in nanoseconds. */
    public long communicationNanos() {
        return communicationNanos;
    }

    /** Number of gradient all-reduces so far. */
    public long synchronizations() {
        return synchronizations;
    }

    // Every rank compares a digest of its parameters' names, shapes, dtypes and trainability
    // with rank 0's; a mismatch anywhere makes every rank fail (rather than some ranks hanging).
    private void verifySameParameters(Map<String, Tensor> params) {
        long digest = digest(params);
        try (TensorScope scope = TensorScope.open()) {
            Tensor fromRoot = Tensor.of(new long[] {digest}, 1);
            group.broadcast(List.of(fromRoot), 0);
            boolean same = fromRoot.itemLong() == digest;
            Tensor mismatches = Tensor.of(new long[] {same ? 0 : 1}, 1);
            group.allReduce(ReduceOp.SUM, mismatches);
            long n = mismatches.itemLong();
            if (n != 0) {
                throw new IllegalStateException(n + " of " + group.worldSize() + " ranks have modules whose parameters"
                        + " (names, shapes, dtypes or trainability) differ from rank 0's" + (same ? "" : ", this rank (" + group.rank() + ") among them"));
            }
        }
    }

    private static long digest(Map<String, Tensor> params) {
        long h = 1125899906842597L;
        for (var e : params.entrySet()) {
            Tensor t = e.getValue();
            h = 31 * h + e.getKey().hashCode();
            h = 31 * h + Arrays.hashCode(t.shape());
            h = 31 * h + t.dtype().ordinal();
            h = 31 * h + (t.requiresGrad() ? 1 : 0);
        }
        return h;
    }
}
