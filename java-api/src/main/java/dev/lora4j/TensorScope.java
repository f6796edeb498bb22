package dev.lora4j;

import dev.lora4j.internal.PerThread;
import java.util.Arrays;

/**
 * Frees every tensor created inside it on the current thread when it closes, except those
 * {@linkplain Tensor#keep() kept}. The idiom for loops full of temporaries:
 *
 * <pre>{@code
 * for (var batch : batches) {
 *     try (var scope = TensorScope.open()) {
 *         Tensor loss = model.forward(batch.x()).sub(batch.y()).pow(2).mean();
 *         loss.backward();
 *         total += loss.item();
 *     } // every intermediate tensor is freed here
 * }
 * }</pre>
 *
 * <p>Scopes nest: a tensor joins the innermost scope open on the thread that creates it, and
 * scopes should be closed innermost first, on the thread that opened them. A
 * {@linkplain Tensor#keep() kept} tensor moves to the enclosing scope, or to the caller when
 * there is none (close it, or let the safety net reclaim it). Tensors
 * a scope owns are not registered with the safety net (the phantom-reference watch that frees
 * tensors left unclosed and unreachable), which
 * makes scoped code the cheapest way to use lora4j.
 *
 * <h2>Misuse</h2>
 * Closing a scope while scopes opened inside it are still open closes those first (their
 * tensors are freed), restores the thread's enclosing scope, and then throws
 * {@link IllegalStateException} to report the mistake. A scope left open and dropped (never
 * closed, no longer reachable) stops taking in tensors once the garbage collector notices, and
 * its tensors pass to the safety net, so that a forgotten scope never captures every later
 * tensor of its thread.
 *
 * <p>Not thread-safe: a scope belongs to the thread that opened it.
 */
public final class TensorScope implements AutoCloseable {

    private static final Tensor[] NONE = new Tensor[0];

    private final Frame frame;

    /**
     * What a scope owns, apart from the object the user holds: the thread refers to frames,
     * so that a scope the user dropped can become unreachable and be noticed.
     */
    static final class Frame {
        final Thread owner = Thread.currentThread();
        final Frame parent;
        final PerThread thread;
        private Tensor[] tensors = NONE;
        private int count;
        private volatile boolean closed;
        /** Set (by the safety net's thread) when the scope object became unreachable while open. */
        volatile boolean abandoned;
        /** Keeps the watch reachable exactly as long as this frame is. */
        ScopeWatch watch;

        Frame(PerThread thread, Frame parent) {
            this.thread = thread;
            this.parent = parent;
        }

        void adopt(Tensor t) {
            if (count == tensors.length) tensors = Arrays.copyOf(tensors, Math.max(8, count * 2));
            tensors[count++] = t;
        }

        boolean isClosed() {
            return closed;
        }

        /** Closes every tensor still owned; one that fails to close passes to the safety net. */
        private RuntimeException release(RuntimeException failure) {
            closed = true;
            for (int i = count - 1; i >= 0; i--) {
                try {
                    tensors[i].releaseFromScope(this);
                } catch (RuntimeException e) {
                    if (failure == null) failure = e;
                    else failure.addSuppressed(e);
                }
                tensors[i] = null;
            }
            count = 0;
            return failure;
        }

        /**
         * Hands the tensors of a dropped scope to the safety net (on {@code via}'s thread), all
         * of them even if the budget's strict mode objects to one; then throws the first objection.
         */
        private void handOver(PerThread via) {
            if (closed) return;
            closed = true;
            RuntimeException failure = null;
            for (int i = 0; i < count; i++) {
                try {
                    tensors[i].abandonedBy(this, via);
                } catch (RuntimeException e) {
                    if (failure == null) failure = e;
                }
                tensors[i] = null;
            }
            count = 0;
            if (failure != null) throw failure;
        }
    }

    private TensorScope(PerThread thread) {
        NoGradScope.closeDropped(thread);
        Frame innermost = popAbandoned(thread);
        this.frame = new Frame(thread, innermost);
        Frame f = frame;
        f.watch = new ScopeWatch(this, () -> f.abandoned = true);
        setInnermost(thread, frame);
    }

    /** Opens a scope on the current thread, nested in the current one if any. */
    public static TensorScope open() {
        return new TensorScope(PerThread.get());
    }

    /**
     * Drops the dropped scopes at the top of {@code thread}'s stack, handing their tensors to
     * the safety net; returns the innermost live frame (or null). Called on the owner thread.
     */
    static Frame popAbandoned(PerThread thread) {
        Frame s = (Frame) thread.scope;
        if (s == null || !s.abandoned) return s;
        Frame live = s;
        while (live != null && live.abandoned) live = live.parent;
        setInnermost(thread, live);
        for (Frame f = s; f != live; f = f.parent) f.handOver(thread); // throws only in strict mode
        return live;
    }

    /**
     * Makes {@code f} the thread's innermost scope, also where the safety net finds it should
     * the thread end with scopes open.
     */
    private static void setInnermost(PerThread thread, Frame f) {
        thread.scope = f;
        SafetyNet.registry(thread).openScopes = f;
    }

    /**
     * Hands the scopes a finished thread left open (no one else will close them) to the safety
     * net's thread, which then owns their tensors; called by that thread.
     */
    static void handOverScopesOf(Object innermost) {
        PerThread here = PerThread.get();
        for (Frame f = (Frame) innermost; f != null; f = f.parent) {
            try {
                f.handOver(here);
            } catch (RuntimeException strictModeObjects) {
                // no one to tell on this thread: the tensors are the safety net's all the same
            }
        }
    }

    /** How many tensors this scope has taken in so far (closed and kept ones included). */
    public int size() {
        return frame.count;
    }

    /**
     * Frees every tensor this scope still owns. Closing twice is a no-op. Scopes opened
     * inside this one and still open are closed first, and then this throws
     * {@link IllegalStateException} (innermost first is the rule). When tensors cannot be
     * closed (a view of their data is in use), the others are still freed, those pass to the
     * safety net, and the first failure is thrown.
     */
    @Override
    public void close() {
        Frame f = frame;
        if (f.closed) return;
        if (Thread.currentThread() != f.owner) {
            throw new IllegalStateException("a tensor scope must be closed on the thread that opened it ("
                    + f.owner.getName() + ")");
        }
        PerThread t = f.thread;
        RuntimeException failure = null;
        int inner = 0;
        if (t.scope != f && encloses(f, (Frame) t.scope)) {
            for (Frame g = (Frame) t.scope; g != null && g != f; g = g.parent) {
                if (!g.closed) inner++;
                failure = g.release(failure);
            }
            failure = withSuppressed(new IllegalStateException("tensor scopes must be closed innermost first: closing this scope"
                    + " also closed " + inner + " scope(s) opened inside it and left open"), failure);
        }
        if (encloses(f, (Frame) t.scope)) setInnermost(t, f.parent);
        failure = f.release(failure);
        f.watch = null;
        if (failure != null) throw failure;
    }

    private static boolean encloses(Frame outer, Frame inner) {
        for (Frame g = inner; g != null; g = g.parent) if (g == outer) return true;
        return false;
    }

    private static RuntimeException withSuppressed(RuntimeException e, RuntimeException earlier) {
        if (earlier != null) e.addSuppressed(earlier);
        return e;
    }
}
