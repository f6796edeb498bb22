/**
 * Data-parallel training across processes and machines on LibTorch's c10d engine (what
 * PyTorch's {@code torch.distributed} uses): {@link dev.lora4j.distributed.ProcessGroup} (a
 * TCPStore rendezvous and Gloo over TCP), {@link dev.lora4j.distributed.DistributedDataParallel}
 * (rank 0's parameters broadcast at start, gradients averaged in one bucketed all-reduce per step)
 * and, in {@code dev.lora4j.data}, {@link dev.lora4j.data.DistributedSampler}.
 *
 * <p>Start N ranks on one machine with {@code scripts/run-distributed.sh N <Example>}; across
 * machines, start one process per rank with {@code MASTER_ADDR}, {@code MASTER_PORT},
 * {@code WORLD_SIZE} and {@code RANK} set, as PyTorch's launcher does, and call
 * {@link dev.lora4j.distributed.ProcessGroup#fromEnvironment()}.
 */
package dev.lora4j.distributed;
