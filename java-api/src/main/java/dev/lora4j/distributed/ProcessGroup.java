package dev.lora4j.distributed;

import dev.lora4j.Tensor;
import dev.lora4j.internal.DistributedCalls;
import dev.lora4j.internal.Status;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A group of processes (ranks) that train together, on LibTorch's c10d engine, the one PyTorch's
 * {@code torch.distributed} and {@code DistributedDataParallel} use: the ranks meet at a
 * {@code TCPStore} that rank 0 hosts at {@code MASTER_ADDR:MASTER_PORT}, then talk to each other
 * directly with Gloo over TCP. The same code runs with all ranks on one machine or one rank per
 * machine; see {@link #fromEnvironment()} for the variables PyTorch's launcher sets.
 *
 * <p>Collectives ({@link #allReduce}, {@link #broadcast}, {@link #barrier}) must be called in the
 * same order, with tensors of the same shapes and dtypes, on every rank. Each first checks that
 * they are (as PyTorch does under {@code TORCH_DISTRIBUTED_DEBUG=DETAIL}): the ranks compare the
 * collective, its reduce op or root, and their tensors' count, dtypes and shapes in one small
 * all-reduce; when these differ, every rank throws a {@link dev.lora4j.TorchException} naming what
 * differs and its own side, and the group stays usable (the ranks are still in step). Each is bounded by the
 * group's timeout (Gloo enforces it too, so nothing is left running after it): a rank that hangs
 * or never arrives makes the others throw a {@link DistributedException} after the timeout, a
 * rank that dies makes them throw at once. After such a failure the group closes its connections
 * (so the other ranks fail promptly as well) and refuses further collectives; close it.
 *
 * <h2>Ownership</h2>
 * The group owns its native process group, its store and its connections; {@link #close()} frees
 * them (and, as rank 0, stops the store the others rendezvous at). A Cleaner frees an unreachable,
 * unclosed group as a safety net. Tensors passed in stay owned by the caller.
 *
 * <h2>Thread-safety</h2>
 * Thread-safe: calls are serialised (so collectives keep their order within the process), and
 * {@link #close()} waits for a running collective (at most its timeout).
 */
public final class ProcessGroup implements AutoCloseable {

    /** PyTorch's default process-group timeout. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(30);

    private static final Cleaner CLEANER = Cleaner.create();

    private final int rank;
    private final int worldSize;
    private final Duration timeout;
    private final Handle handle;
    private final Cleaner.Cleanable cleanable;

    private static final class Handle implements Runnable {
        MemorySegment group; // guarded by the ProcessGroup's monitor (or unreachable when cleaned)

        Handle(MemorySegment group) {
            this.group = group;
        }

        @Override
        public void run() {
            MemorySegment g = group;
            group = null;
            if (g != null) DistributedCalls.free(g);
        }
    }

    private ProcessGroup(int rank, int worldSize, Duration timeout, MemorySegment group) {
        this.rank = rank;
        this.worldSize = worldSize;
        this.timeout = timeout;
        this.handle = new Handle(group);
        this.cleanable = CLEANER.register(this, handle);
    }

    /**
     * Joins the group of {@code worldSize} ranks meeting at {@code masterAddr:masterPort}, as
     * {@code torch.distributed.init_process_group("gloo", ...)}. Rank 0 listens at the port (on
     * every interface); the call returns once all ranks have arrived and connected to each other.
     * Gloo binds to the interface named by the environment variable {@code GLOO_SOCKET_IFNAME}
     * when set (as in PyTorch), otherwise to the local address this host uses to reach
     * {@code masterAddr}.
     *
     * @param timeout bounds the rendezvous and, afterwards, every collective
     *     (PyTorch's {@code timeout}; {@link #DEFAULT_TIMEOUT} is its default)
     * @throws DistributedException when a rank is missing or unreachable after the timeout
     */
    public static ProcessGroup init(String masterAddr, int masterPort, int worldSize, int rank, Duration timeout) {
        Objects.requireNonNull(masterAddr, "masterAddr");
        if (masterAddr.isBlank()) throw new IllegalArgumentException("masterAddr is empty");
        if (masterPort < 1 || masterPort > 65535)
            throw new IllegalArgumentException("masterPort must be in 1..65535, got " + masterPort);
        if (worldSize < 1) throw new IllegalArgumentException("worldSize must be >= 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize)
            throw new IllegalArgumentException("rank must be in 0.." + (worldSize - 1) + ", got " + rank);
        long millis = timeoutMillis(timeout);
        String iface = System.getenv("GLOO_SOCKET_IFNAME");
        if (iface != null && iface.isBlank()) iface = null;
        String local = iface == null ? localAddressTowards(masterAddr, masterPort) : null;
        MemorySegment[] out = new MemorySegment[1];
        int s = DistributedCalls.newGroup(masterAddr, masterPort, worldSize, rank, millis, local, iface, out);
        check(s, "rendezvous", rank, worldSize, timeout);
        return new ProcessGroup(rank, worldSize, timeout, out[0]);
    }

    /** {@link #fromEnvironment(Duration)} with {@link #DEFAULT_TIMEOUT}. */
    public static ProcessGroup fromEnvironment() {
        return fromEnvironment(DEFAULT_TIMEOUT);
    }

    /**
     * Joins the group described by the environment, as PyTorch's {@code init_method="env://"}
     * (what {@code torchrun} and {@code scripts/run-distributed.sh} set): {@code MASTER_ADDR},
     * {@code MASTER_PORT}, {@code WORLD_SIZE} and {@code RANK}.
     *
     * @throws IllegalStateException when a variable is missing or malformed
     */
    public static ProcessGroup fromEnvironment(Duration timeout) {
        return fromEnvironment(System.getenv(), timeout);
    }

    /** {@link #fromEnvironment(Duration)} over an explicit variable map. */
    public static ProcessGroup fromEnvironment(Map<String, String> env, Duration timeout) {
        String addr = variable(env, "MASTER_ADDR");
        int port = intVariable(env, "MASTER_PORT");
        int size = intVariable(env, "WORLD_SIZE");
        int rank = intVariable(env, "RANK");
        return init(addr, port, size, rank, timeout);
    }

    /** This process's rank, 0 ≤ rank &lt; {@link #worldSize()}. */
    public int rank() {
        return rank;
    }

    /** The number of ranks. */
    public int worldSize() {
        return worldSize;
    }

    /** The timeout of the rendezvous and of every collective. */
    public Duration timeout() {
        return timeout;
    }

    /**
     * Reduces each tensor in place across the group, as {@code torch.distributed.all_reduce}; the
     * tensors (dense, CPU) are flattened into one buffer per dtype and reduced in one Gloo call.
     */
    public void allReduce(List<Tensor> tensors, ReduceOp op) {
        synchronized (this) {
            MemorySegment g = group();
            List<Tensor> ts = orRefuse(g, () -> {
                Objects.requireNonNull(op, "op");
                return checked(tensors, "tensors");
            });
            check(DistributedCalls.allReduce(g, ts, op == ReduceOp.AVG, timeout.toMillis()), "allReduce");
        }
    }

    /** {@link #allReduce(List, ReduceOp)} of the given tensors. */
    public void allReduce(ReduceOp op, Tensor... tensors) {
        allReduce(List.of(tensors), op);
    }

    /**
     * Reduces the gradients of {@code params} (leaves that require grad) in place in one bucketed
     * all-reduce; a parameter without a gradient contributes zeros (and gets a zero gradient), so
     * that every rank ends with the same gradients.
     */
    public void allReduceGradients(List<Tensor> params, ReduceOp op) {
        synchronized (this) {
            MemorySegment g = group();
            List<Tensor> ps = orRefuse(g, () -> {
                Objects.requireNonNull(op, "op");
                return checked(params, "params");
            });
            check(DistributedCalls.allReduceGrads(g, ps, op == ReduceOp.AVG, timeout.toMillis()), "allReduceGradients");
        }
    }

    /** Copies rank {@code src}'s tensors into the other ranks' tensors in place, as {@code torch.distributed.broadcast}. */
    public void broadcast(List<Tensor> tensors, int src) {
        synchronized (this) {
            MemorySegment g = group();
            List<Tensor> ts = orRefuse(g, () -> {
                if (src < 0 || src >= worldSize)
                    throw new IllegalArgumentException("src must be in 0.." + (worldSize - 1) + ", got " + src);
                return checked(tensors, "tensors");
            });
            check(DistributedCalls.broadcast(g, ts, src, timeout.toMillis()), "broadcast");
        }
    }

    /** Returns once every rank has called it, as {@code torch.distributed.barrier}. */
    public void barrier() {
        synchronized (this) {
            check(DistributedCalls.barrier(group(), timeout.toMillis()), "barrier");
        }
    }

    /** Frees the group (waiting for a running collective); idempotent. */
    @Override
    public synchronized void close() {
        cleanable.clean();
    }

    /** Whether {@link #close()} was called. */
    public synchronized boolean isClosed() {
        return handle.group == null;
    }

    @Override
    public String toString() {
        return "ProcessGroup[rank " + rank + " of " + worldSize + ", gloo]";
    }

    // Called with the monitor held; the handle stays valid until the call returns.
    private MemorySegment group() {
        MemorySegment g = handle.group;
        if (g == null) throw new IllegalStateException("process group is closed");
        return g;
    }

    private void check(int status, String operation) {
        try {
            check(status, operation, rank, worldSize, timeout);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    private static void check(int status, String operation, int rank, int worldSize, Duration timeout) {
        if (status == 0) return;
        if (status == DistributedCalls.TIMEOUT || status == DistributedCalls.COMMUNICATION) {
            var kind = status == DistributedCalls.TIMEOUT ? DistributedException.Kind.TIMEOUT : DistributedException.Kind.COMMUNICATION;
            throw new DistributedException(kind, operation, rank, worldSize, timeout, DistributedCalls.lastError());
        }
        Status.check(status, operation);
    }

    /**
     * {@code args.get()}, or, when this rank's own arguments are refused, the refusal taken to the
     * other ranks first ({@link DistributedCalls#refuse}) so that they fail at once, not at the
     * timeout. Called with the monitor held.
     */
    private <T> T orRefuse(MemorySegment g, java.util.function.Supplier<T> args) {
        try {
            return args.get();
        } catch (RuntimeException e) {
            DistributedCalls.refuse(g, timeout.toMillis());
            throw e;
        }
    }

    // A copy of the list, with a NullPointerException naming a missing list or element.
    private static List<Tensor> checked(List<Tensor> tensors, String name) {
        Objects.requireNonNull(tensors, name);
        for (int i = 0; i < tensors.size(); i++) Objects.requireNonNull(tensors.get(i), name + "[" + i + "]");
        return List.copyOf(tensors);
    }

    private static long timeoutMillis(Duration timeout) {
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative() || timeout.isZero()) throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        try {
            return Math.max(1, timeout.toMillis());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("timeout is too long: " + timeout, e);
        }
    }

    // The address of the interface that routes to the master (a UDP "connect" sends nothing).
    private static String localAddressTowards(String masterAddr, int port) {
        try (DatagramSocket s = new DatagramSocket()) {
            s.connect(new InetSocketAddress(InetAddress.getByName(masterAddr), port));
            InetAddress local = s.getLocalAddress();
            return local == null || local.isAnyLocalAddress() ? null : local.getHostAddress();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find a route to MASTER_ADDR " + masterAddr, e);
        }
    }

    private static String variable(Map<String, String> env, String name) {
        String v = env.get(name);
        if (v == null || v.isBlank()) throw new IllegalStateException("environment variable " + name + " is not set");
        return v.trim();
    }

    private static int intVariable(Map<String, String> env, String name) {
        String v = variable(env, name);
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalStateException("environment variable " + name + " is not an integer: '" + v + "'");
        }
    }
}
