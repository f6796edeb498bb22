package dev.lora4j.distributed;

/** How {@link ProcessGroup#allReduce} combines the ranks' tensors, as {@code torch.distributed.ReduceOp}. */
public enum ReduceOp {
    /** The element-wise sum over all ranks. */
    SUM,
    /** The element-wise mean over all ranks (the sum divided by the world size; floating-point tensors). */
    AVG
}
