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
 * closed on another thread only drops its handle (atomically); its entry is skipped and dropped
 * when its thread's array next fills up. The arrays of finished threads are compacted by the
 * daemon thread, which owns them from then on.
 *
 * <p>Internal to {@code dev.lora4j}; thread-safe as described.
 */
final class SafetyNet {

    private static final ReferenceQueue<Tensor> QUEUE = new ReferenceQueue<>();
    private static final LongAdder RECLAIMED = new LongAdder();
    /** Every registry ever created and not yet retired: keeps their references reachable. */
    private static final List<Registry> REGISTRIES = new ArrayList<>();

    static {
        Thread.ofPlatform().daemon().name("lora4j-tensor-cleaner").start(SafetyNet::run);
    }

    private SafetyNet() {}

    /** Holds a native handle's address (0 once freed) and watches its tensor. */
    static final class Ref extends PhantomReference<Tensor> {
        private static final VarHandle ADDRESS;

        static {
            try {
                ADDRESS = MethodHandles.lookup().findVarHandle(Ref.class, "address", long.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private volatile long address;
        /** The registry holding this reference, or null; written and read by its owner thread. */
        Registry registry;
        int slot = -1;

        Ref(Tensor t, long address) {
            super(t, QUEUE);
            this.address = address;
        }

        long address() {
            return address;
        }

        /** Takes the address (0 if already taken): exactly one caller frees the handle. */
        long take() {
            return (long) ADDRESS.getAndSet(this, 0L);
        }

        /** Unregisters after a close, when on the registering thread (else left for compaction). */
        void closed() {
            Registry r = registry;
            if (r != null && r.owner == Thread.currentThread()) r.remove(this);
        }
    }

    /** One thread's registered references. Only its owner (or, once it died, the daemon) changes it. */
    static final class Registry {
        final Thread owner = Thread.currentThread();
        private Ref[] refs = new Ref[64];
        private int size;

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
            refs[i] = last;
            last.slot = i;
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
                if (r.address() != 0) {
                    r.slot = n;
                    refs[n++] = r;
                } else {
                    r.slot = -1;
                }
            }
            java.util.Arrays.fill(refs, n, size, null);
            size = n;
        }
    }

    /** Registers {@code r} with the calling thread's registry. */
    static void register(PerThread thread, Ref r) {
        Object reg = thread.tensorRegistry;
        if (reg == null) {
            Registry fresh = new Registry();
            synchronized (REGISTRIES) {
                REGISTRIES.add(fresh);
            }
            thread.tensorRegistry = reg = fresh;
        }
        ((Registry) reg).add(r);
    }

    static long reclaimedCount() {
        return RECLAIMED.sum();
    }

    private static void run() {
        while (true) {
            try {
                Ref r = (Ref) QUEUE.remove(1000);
                if (r != null) {
                    long h = r.take();
                    if (h != 0) {
                        Critical.free(h);
                        RECLAIMED.increment();
                    }
                }
                retireFinishedThreads();
            } catch (Throwable t) {
                // keep the safety net running whatever happens
            }
        }
    }

    /** Compacts the registries of threads that have ended; forgets those left empty. */
    private static void retireFinishedThreads() {
        synchronized (REGISTRIES) {
            REGISTRIES.removeIf(reg -> {
                if (reg.owner.isAlive()) return false;
                reg.compact();
                return reg.size == 0;
            });
        }
    }
}
