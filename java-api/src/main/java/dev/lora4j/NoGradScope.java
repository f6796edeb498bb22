package dev.lora4j;

import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.ValueLayout;

/**
 * Disables gradient recording on the current thread until closed, like PyTorch's
 * {@code with torch.no_grad():}. Open it with {@link Torch#noGrad()} in a try-with-resources.
 *
 * <p>Grad mode is thread-local in LibTorch: the scope must be closed on the thread that opened
 * it (closing elsewhere throws {@link IllegalStateException}). Closing twice is a no-op. On a
 * virtual thread the scope holds for that thread wherever it runs: LibTorch keeps the mode per
 * OS thread, and lora4j applies the virtual thread's mode to its carrier on each call.
 *
 * <h2>Misuse</h2>
 * Scopes nest. Closing one while scopes opened inside it are still open closes those too,
 * restores the grad mode this one found, and then throws {@link IllegalStateException} to
 * report the mistake, so that an out-of-order close never leaves the thread in the wrong mode.
 * A scope left open and dropped (no longer reachable) is closed once the garbage collector
 * notices, at the thread's next scope operation ({@link Torch#noGrad()},
 * {@link TensorScope#open()}, {@link Torch#isGradEnabled()}), which restores the grad mode it
 * found.
 */
public final class NoGradScope implements AutoCloseable {

    private final Frame frame;

    /** What the thread's stack of no-grad scopes holds (not the scope object, which may be dropped). */
    static final class Frame {
        final Thread owner = Thread.currentThread();
        final PerThread thread;
        final Frame parent;
        final boolean previous;
        boolean closed;
        volatile boolean abandoned;
        /** Keeps the watch reachable exactly as long as this frame is. */
        ScopeWatch watch;

        Frame(PerThread thread, Frame parent, boolean previous) {
            this.thread = thread;
            this.parent = parent;
            this.previous = previous;
        }
    }

    NoGradScope() {
        PerThread t = PerThread.get();
        closeDropped(t);
        boolean previous = setGradEnabled(t, false);
        frame = new Frame(t, (Frame) t.gradScope, previous);
        Frame f = frame;
        f.watch = new ScopeWatch(this, () -> f.abandoned = true);
        t.gradScope = frame;
    }

    private static boolean setGradEnabled(PerThread t, boolean enabled) {
        Status.check(LibLora4j.lt_grad_set_enabled(enabled ? 1 : 0, t.out0), "noGrad");
        return t.out0.get(ValueLayout.JAVA_INT, 0) != 0;
    }

    /** Closes the dropped scopes on top of the thread's stack, restoring the grad mode they found. */
    static void closeDropped(PerThread t) {
        Frame f = (Frame) t.gradScope;
        if (f == null || !f.abandoned) return;
        boolean mode = f.previous;
        while (f != null && f.abandoned) {
            f.closed = true;
            mode = f.previous;
            f = f.parent;
        }
        t.gradScope = f;
        setGradEnabled(t, mode);
    }

    /** Restores the grad mode that was in force when this scope opened. */
    @Override
    public void close() {
        Frame f = frame;
        if (f.closed) return;
        if (Thread.currentThread() != f.owner) {
            throw new IllegalStateException("a no-grad scope must be closed on the thread that opened it ("
                    + f.owner.getName() + "), not " + Thread.currentThread().getName());
        }
        PerThread t = f.thread;
        int inner = 0;
        boolean onStack = false;
        for (Frame g = (Frame) t.gradScope; g != null; g = g.parent) {
            if (g == f) {
                onStack = true;
                break;
            }
        }
        if (onStack) {
            for (Frame g = (Frame) t.gradScope; g != f; g = g.parent) {
                if (!g.closed) inner++;
                g.closed = true;
            }
            t.gradScope = f.parent;
        }
        f.closed = true;
        f.watch = null;
        setGradEnabled(t, f.previous);
        if (inner > 0) {
            throw new IllegalStateException("no-grad scopes must be closed innermost first: closing this scope also closed "
                    + inner + " scope(s) opened inside it and left open (grad mode restored to "
                    + (f.previous ? "enabled" : "disabled") + ")");
        }
    }
}
