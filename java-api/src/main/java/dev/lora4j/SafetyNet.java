package dev.lora4j;

import dev.lora4j.internal.Critical;
import dev.lora4j.internal.PerThread;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * The safety net under tensors that no scope owns: a tensor that becomes unreachable without
 * being closed has its native handle freed by a daemon thread, and counted
 * ({@link Torch#reclaimedTensorCount()}).
 *
 * <p>It does what a {@link java.lang.ref.Cleaner} does, at a fraction of the per-tensor cost,
 * which matters because every unscoped tensor pays it: the handle holder is itself the
 * {@link PhantomReference} (one object, not two), and it is kept reachable in an array owned by
 * the thread that registered it, so registering is an array store and unregistering on close
 * (on that thread, the common case) a swap with the last entry, both without locks. A tensor
 * closed on another thread only marks its reference closed; its entry is skipped and dropped
 * when its thread's array next fills up. The arrays of finished threads are compacted by the
 * daemon thread, which owns them from then on.
 *
 * <p>The GC does not see native memory, so the net accounts for it ({@link NativeBudget}): the
 * bytes of tensors owned by no scope and no module count against a budget, and exceeding it
 * makes the creating thread collect and free unreachable tensors, as direct buffers do.
 *
 * <p>Internal to {@code dev.lora4j}; thread-safe as described.
 */
final class SafetyNet {

    /** Where the GC puts tensors ({@link Ref}) and dropped open scopes ({@link ScopeWatch}) it found unreachable. */
    static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
    private static final LongAdder RECLAIMED = new LongAdder();
    /** Every registry ever created and not yet retired: keeps their references reachable. */
    private static final List<Registry> REGISTRIES = new ArrayList<>();

    static {
        Thread.ofPlatform().daemon().name("lora4j-tensor-cleaner").start(SafetyNet::run);
    }

    private SafetyNet() {}

    /**
     * Holds a native handle and watches its tensor; counts the downcalls using the handle so
     * that no way of dying (close, scope exit, the safety net) frees it under a running call.
     *
     * <p>{@code state} is {@code 2·users + closed}: a downcall {@linkplain #acquire() acquires}
     * (one atomic add) and {@linkplain #release() releases}; closing sets the closed bit, and
     * whoever leaves the state at "closed, no users" frees the handle, exactly once (the
     * transition to {@link #FREED} is a compare-and-set).
     */
    static final class Ref extends PhantomReference<Tensor> {
        private static final VarHandle STATE;
        private static final int CLOSED = 1;
        private static final int USER = 2;
        /** Closed and freed; odd, and no sequence of acquire/release brings it back to CLOSED. */
        private static final int FREED = Integer.MIN_VALUE | CLOSED;

        static {
            try {
                var lookup = MethodHandles.lookup();
                STATE = lookup.findVarHandle(Ref.class, "state", int.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private final long address;
        private volatile int state;
        /** Native bytes this reference counts against the unowned budget (0 when not counted). */
        private long bytes;
        /** Where the tensor was created, when sites are tracked (see {@link NativeBudget}). */
        StackTraceElement[] site;
        /** The registry holding this reference, or null; written and read by its owner thread. */
        Registry registry;
        int slot = -1;

        Ref(Tensor t, long address) {
            super(t, QUEUE);
            this.address = address;
        }

        boolean isClosed() {
            return (state & CLOSED) != 0;
        }

        /** Pins the handle for a downcall and returns its address; throws when closed. */
        long acquire() {
            int s = (int) STATE.getAndAdd(this, USER);
            if ((s & CLOSED) != 0) {
                release();
                throw new IllegalStateException("tensor is closed");
            }
            return address;
        }

        /** Unpins; frees the handle when this was the last user of a closed tensor. */
        void release() {
            int s = (int) STATE.getAndAdd(this, -USER) - USER;
            if (s == CLOSED && STATE.compareAndSet(this, CLOSED, FREED)) free();
        }

        /**
         * Marks the tensor closed while keeping it pinned (by the closer), so that views can be
         * invalidated before the memory goes; false if it was closed already.
         */
        boolean beginClose() {
            int s;
            do {
                s = state;
                if ((s & CLOSED) != 0) return false;
            } while (!STATE.compareAndSet(this, s, (s | CLOSED) + USER));
            return true;
        }

        /** Undoes {@link #beginClose()}: the tensor is open again. */
        void abortClose() {
            int s;
            do {
                s = state;
            } while (!STATE.compareAndSet(this, s, (s & ~CLOSED) - USER));
        }

        /**
         * Claims the handle for freeing when no call uses it (the common case of a close): one
         * compare-and-set to the final state, after which every pin throws; false when closed
         * already or in use. The caller frees it with {@link #freeClaimed()}.
         */
        boolean claimIdle() {
            return STATE.compareAndSet(this, 0, FREED);
        }

        /** Frees the handle after a successful {@link #claimIdle()}; exactly once. */
        void freeClaimed() {
            free();
        }

        /** Closes without views to invalidate (the safety net's path); false if closed already. */
        boolean close() {
            if (!beginClose()) return false;
            release();
            return true;
        }

        private void free() {
            uncount();
            Critical.free(address);
        }

        /**
         * Counts {@code b} native bytes against the unowned budget, in {@code registry} (the
         * calling thread's); true when that published the thread's pending bytes.
         */
        boolean count(long b, Registry registry) {
            bytes = b;
            return registry.addPending(b);
        }

        /**
         * Stops counting this tensor (it was freed, or a module took it over): in the calling
         * thread's pending bytes when this reference is in that thread's registry, else in the
         * shared count; either way the total stays exact. Needs no atomic swap: both callers
         * exclude each other, the free running only once no one pins the tensor and a module's
         * taking over running pinned.
         */
        void uncount() {
            long b = bytes;
            if (b != 0) {
                bytes = 0;
                Registry r = registry;
                if (r != null && r.owner == Thread.currentThread()) r.addPending(-b);
                else NativeBudget.add(-b);
            }
        }

        long address() {
            return address;
        }

        /** Unregisters after a close, when on the registering thread (else left for compaction). */
        void closed() {
            Registry r = registry;
            if (r != null && r.owner == Thread.currentThread()) r.remove(this);
        }
    }

    /** One thread's registered references. Only its owner (or, once it died, the daemon) changes it. */
    static final class Registry {
        /**
         * Unowned bytes a thread keeps to itself before publishing them to the shared count
         * (either way): a tensor's life then costs no atomic update of a shared counter, and the
         * budget is exceeded by at most this much per thread before a collection: 64 KiB, or
         * a 16th of a smaller budget.
         */
        static final long PUBLISH_BYTES = Math.clamp(NativeBudget.BUDGET / 16, 1, 64 << 10);
        private static final VarHandle PENDING;

        static {
            try {
                PENDING = MethodHandles.lookup().findVarHandle(Registry.class, "pending", long.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        final Thread owner = Thread.currentThread();
        private Ref[] refs = new Ref[64];
        private int size;
        /** The owner's innermost open tensor scope (see {@link TensorScope}), or null. */
        Object openScopes;
        /**
         * Unowned bytes counted on the owner thread and not yet in the shared count; written by
         * the owner only (opaque, so that {@link #pendingBytes()} reads it whole).
         */
        private long pending;

        /** Adds {@code b} to the pending bytes, publishing them past {@link #PUBLISH_BYTES}; true when it published. */
        boolean addPending(long b) {
            long p = pending + b;
            if (p < PUBLISH_BYTES && p > -PUBLISH_BYTES) {
                PENDING.setOpaque(this, p);
                return false;
            }
            PENDING.setOpaque(this, 0L);
            NativeBudget.add(p);
            return true;
        }

        /** Moves the pending bytes into the shared count (owner, or the daemon once the owner ended). */
        void publishPending() {
            long p = pending;
            if (p != 0) {
                PENDING.setOpaque(this, 0L);
                NativeBudget.add(p);
            }
        }

        void add(Ref r) {
            if (size == refs.length) grow();
            r.registry = this;
            r.slot = size;
            refs[size++] = r;
        }

        void remove(Ref r) {
            int i = r.slot;
            if (i < 0 || i >= size || refs[i] != r) return;
            Ref last = refs[--size];
            if (i != size) { // the newest entry goes without a store: a tensor's life is mostly LIFO
                refs[i] = last;
                last.slot = i;
            }
            refs[size] = null;
            r.slot = -1;
            r.registry = null;
        }

        /** Drops entries whose handle is gone (closed elsewhere or reclaimed); doubles if still 3/4 full. */
        private void grow() {
            compact();
            if (size > refs.length * 3 / 4) refs = java.util.Arrays.copyOf(refs, refs.length * 2);
        }

        private void compact() {
            int n = 0;
            for (int i = 0; i < size; i++) {
                Ref r = refs[i];
                if (!r.isClosed()) {
                    r.slot = n;
                    refs[n++] = r;
                } else {
                    r.slot = -1;
                }
            }
            java.util.Arrays.fill(refs, n, size, null);
            size = n;
        }

        /** Distinct creation sites of this registry's newest live references (for messages). */
        List<StackTraceElement[]> sites(int max) {
            List<StackTraceElement[]> out = new ArrayList<>();
            for (int i = size - 1; i >= 0 && out.size() < max; i--) {
                Ref r = refs[i];
                if (!r.isClosed() && r.site != null && out.stream().noneMatch(s -> java.util.Arrays.equals(s, r.site))) {
                    out.add(r.site);
                }
            }
            return out;
        }
    }

    /**
     * Registers {@code r} with the calling thread's registry; when {@code counted} (a tensor
     * that no scope and no module owns) its bytes count against the unowned budget, which may
     * reclaim unreachable tensors first, or throw in strict mode.
     */
    static void register(PerThread thread, Ref r, boolean counted) {
        Registry registry = registry(thread);
        registry.add(r);
        if (counted) NativeBudget.charge(r, registry);
    }

    /** The calling thread's registry ({@code thread} is its state), created on first use. */
    static Registry registry(PerThread thread) {
        Object reg = thread.tensorRegistry;
        if (reg == null) {
            Registry fresh = new Registry();
            synchronized (REGISTRIES) {
                REGISTRIES.add(fresh);
            }
            thread.tensorRegistry = reg = fresh;
        }
        return (Registry) reg;
    }

    /** The bytes every registry holds pending (see {@link Registry#addPending}). */
    static long pendingBytes() {
        long sum = 0;
        synchronized (REGISTRIES) {
            for (Registry reg : REGISTRIES) sum += (long) Registry.PENDING.getOpaque(reg);
        }
        return sum;
    }

    static long reclaimedCount() {
        return RECLAIMED.sum();
    }

    /** Frees what the GC found unreachable so far, on the calling thread; returns how many. */
    static int drain() {
        int n = 0;
        for (Object r; (r = QUEUE.poll()) != null; n++) process(r);
        return n;
    }

    /** Acts on a reference the GC found unreachable: frees a tensor, or notes a dropped scope. */
    static void process(Object ref) {
        if (ref instanceof Ref r) reclaim(r);
        else if (ref instanceof ScopeWatch w) w.dropped();
    }

    /** Frees one reference the GC found unreachable (unless it was closed). */
    private static void reclaim(Ref r) {
        StackTraceElement[] site = r.site;
        long bytes = r.bytes;
        if (r.close()) {
            RECLAIMED.increment();
            if (site != null) NativeBudget.warnReclaimed(site, bytes);
        }
    }

    private static void run() {
        while (true) {
            try {
                Object r = QUEUE.remove(1000);
                if (r != null) process(r);
                retireFinishedThreads();
            } catch (Throwable t) {
                // keep the safety net running whatever happens
            }
        }
    }

    /**
     * Takes over the scopes that threads left open when they ended, then compacts the
     * registries of ended threads and forgets those left empty.
     */
    private static void retireFinishedThreads() {
        List<Object> openScopes = new ArrayList<>();
        synchronized (REGISTRIES) {
            for (Registry reg : REGISTRIES) {
                if (!reg.owner.isAlive() && reg.openScopes != null) {
                    openScopes.add(reg.openScopes);
                    reg.openScopes = null;
                }
            }
        }
        openScopes.forEach(TensorScope::handOverScopesOf); // registers with this thread's registry
        synchronized (REGISTRIES) {
            REGISTRIES.removeIf(reg -> {
                if (reg.owner.isAlive()) return false;
                reg.publishPending(); // the owner ended: its writes happened before isAlive() said so
                reg.compact();
                return reg.size == 0;
            });
        }
    }
}
