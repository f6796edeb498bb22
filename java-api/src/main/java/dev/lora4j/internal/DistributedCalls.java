package dev.lora4j.internal;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The shim's process-group functions for {@code dev.lora4j.distributed}: each returns the shim's
 * status (0 = OK, {@link #TIMEOUT}, {@link #COMMUNICATION}, or another failure) and leaves the
 * translation into exceptions to the caller; {@link #lastError()} is the failure's message.
 *
 * <p>Internal: not part of lora4j's API. Stateless and thread-safe; a process group handle is used
 * by one thread at a time (its owner serialises the calls).
 */
public final class DistributedCalls {

    static {
        NativeLibrary.ensureLoaded();
    }

    /** A rendezvous or collective did not complete within its timeout. */
    public static final int TIMEOUT = LT_ERR_TIMEOUT();
    /** A peer failed or closed its connection, or the network failed. */
    public static final int COMMUNICATION = LT_ERR_COMMUNICATION();

    private DistributedCalls() {}

    /** Status of creating a group; on success {@code out[0]} holds its handle. */
    public static int newGroup(String masterAddr, int masterPort, int worldSize, int rank, long timeoutMillis,
            String localAddr, String interfaceName, MemorySegment[] out) {
        try (Arena arena = Arena.ofConfined()) {
            PerThread t = PerThread.get();
            int s = lt_process_group_new(arena.allocateFrom(masterAddr), masterPort, worldSize, rank, timeoutMillis,
                    localAddr == null ? MemorySegment.NULL : arena.allocateFrom(localAddr),
                    interfaceName == null ? MemorySegment.NULL : arena.allocateFrom(interfaceName), t.out0);
            if (s == 0) out[0] = PerThread.pointer(t.out0);
            return s;
        }
    }

    public static void free(MemorySegment group) {
        lt_process_group_free(group);
    }

    /** Status of reducing {@code tensors} in place ({@code average}: the mean, else the sum). */
    public static int allReduce(MemorySegment group, List<Tensor> tensors, boolean average, long timeoutMillis) {
        return withHandles(group, timeoutMillis, tensors, (p, n) -> lt_process_group_all_reduce(group, p, n, op(average), timeoutMillis));
    }

    /** Status of reducing the gradients of {@code params} in place. */
    public static int allReduceGrads(MemorySegment group, List<Tensor> params, boolean average, long timeoutMillis) {
        return withHandles(group, timeoutMillis, params, (p, n) -> lt_process_group_all_reduce_grads(group, p, n, op(average), timeoutMillis));
    }

    /** Status of broadcasting {@code tensors} from rank {@code root}. */
    public static int broadcast(MemorySegment group, List<Tensor> tensors, int root, long timeoutMillis) {
        return withHandles(group, timeoutMillis, tensors, (p, n) -> lt_process_group_broadcast(group, p, n, root, timeoutMillis));
    }

    public static int barrier(MemorySegment group, long timeoutMillis) {
        return lt_process_group_barrier(group, timeoutMillis);
    }

    /**
     * Takes part in the ranks' check of the next collective as a refusal, for a rank whose own
     * arguments were refused in Java (a null, a closed tensor): the other ranks then fail at once
     * instead of at the timeout, and the group stays in step. The shim's answer (a refusal of
     * its own) is ignored: the caller throws its own exception.
     */
    public static void refuse(MemorySegment group, long timeoutMillis) {
        int ignored = lt_process_group_all_reduce(group, MemorySegment.NULL, 0, -1, timeoutMillis);
    }

    /** The calling thread's message of the last failed shim call. */
    public static String lastError() {
        return lt_last_error().reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static int op(boolean average) {
        return average ? LT_REDUCE_AVG() : LT_REDUCE_SUM();
    }

    @FunctionalInterface
    private interface ListCall {
        int call(MemorySegment pointers, long count);
    }

    // The tensors stay pinned (alive, and not freed by a close on another thread) for the whole
    // downcall; one that cannot be pinned (closed) makes this rank refuse the collective.
    private static int withHandles(MemorySegment group, long timeoutMillis, List<Tensor> tensors, ListCall call) {
        Tensor[] ts = tensors.toArray(Tensor[]::new);
        MemorySegment[] handles;
        try {
            handles = Calls.pinAll(ts, "tensors");
        } catch (RuntimeException e) {
            refuse(group, timeoutMillis);
            throw e;
        }
        try {
            return call.call(PerThread.get().pointers(handles), handles.length);
        } finally {
            Calls.unpinAll(ts);
        }
    }
}
