package dev.lora4j.distributed;

import java.time.Duration;

/**
 * A rendezvous or collective of a {@link ProcessGroup} failed: a rank never arrived or did not
 * answer within the timeout ({@link Kind#TIMEOUT}), or a peer died, closed its connection or the
 * network failed ({@link Kind#COMMUNICATION}). After one, the ranks are out of step: the group
 * refuses further collectives; close it (and, as with PyTorch, restart the job).
 *
 * <p>Immutable and thread-safe.
 */
public final class DistributedException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** What went wrong. */
    public enum Kind {
        /** Nothing happened within the timeout: a rank is missing, stuck or unreachable. */
        TIMEOUT,
        /** A peer failed or closed its connection, or the network failed. */
        COMMUNICATION
    }

    private final Kind kind;
    private final String operation;
    private final int rank;
    private final int worldSize;

    DistributedException(Kind kind, String operation, int rank, int worldSize, Duration timeout, String nativeMessage) {
        super(operation + " failed on rank " + rank + " of " + worldSize + " ("
                + (kind == Kind.TIMEOUT ? "timed out after " + timeout.toMillis() + " ms" : "communication failure")
                + "): " + nativeMessage);
        this.kind = kind;
        this.operation = operation;
        this.rank = rank;
        this.worldSize = worldSize;
    }

    /** Whether this was a timeout or another communication failure. */
    public Kind kind() {
        return kind;
    }

    /** The operation that failed, e.g. {@code "allReduce"} or {@code "rendezvous"}. */
    public String operation() {
        return operation;
    }

    /** The rank that saw the failure. */
    public int rank() {
        return rank;
    }

    public int worldSize() {
        return worldSize;
    }
}
