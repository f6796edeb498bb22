package dev.lora4j;

import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;

/**
 * Disables gradient recording on the current thread until closed, like PyTorch's
 * {@code with torch.no_grad():}. Open it with {@link Torch#noGrad()} in a try-with-resources.
 *
 * <p>Grad mode is thread-local in LibTorch: the scope must be closed on the thread that opened
 * it (closing elsewhere throws {@link IllegalStateException}). Closing twice is a no-op.
 */
public final class NoGradScope implements AutoCloseable {

    private final Thread owner = Thread.currentThread();
    private final boolean previous;
    private boolean closed;

    NoGradScope() {
        PerThread t = PerThread.get();
        Status.check(LibLora4j.lt_grad_set_enabled(0, t.out0), "noGrad");
        previous = t.out0.get(java.lang.foreign.ValueLayout.JAVA_INT, 0) != 0;
    }

    /** Restores the grad mode that was in force when this scope opened. */
    @Override
    public void close() {
        if (closed) return;
        if (Thread.currentThread() != owner) {
            throw new IllegalStateException("a no-grad scope must be closed on the thread that opened it ("
                    + owner.getName() + "), not " + Thread.currentThread().getName());
        }
        closed = true;
        Status.check(LibLora4j.lt_grad_set_enabled(previous ? 1 : 0, PerThread.get().out0), "noGrad");
    }
}
