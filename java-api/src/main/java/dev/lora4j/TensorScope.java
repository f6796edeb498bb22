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
 * scopes must be closed innermost first, on the thread that opened them. A
 * {@linkplain Tensor#keep() kept} tensor moves to the enclosing scope, or to the caller when
 * there is none (close it, or let the safety net reclaim it). Tensors
 * a scope owns are not registered with the safety net (the phantom-reference watch that frees
 * tensors left unclosed and unreachable), which
 * makes scoped code the cheapest way to use lora4j.
 *
 * <p>Not thread-safe: a scope belongs to the thread that opened it.
 */
public final class TensorScope implements AutoCloseable {

    private static final Tensor[] NONE = new Tensor[0];

    private final Thread owner = Thread.currentThread();
    private final TensorScope parent;
    private final PerThread thread;
    private Tensor[] tensors = NONE;
    private int count;
    private boolean closed;

    private TensorScope(PerThread thread) {
        this.thread = thread;
        this.parent = thread.scope;
        thread.scope = this;
    }

    /** Opens a scope on the current thread, nested in the current one if any. */
    public static TensorScope open() {
        return new TensorScope(PerThread.get());
    }

    void adopt(Tensor t) {
        if (count == tensors.length) tensors = Arrays.copyOf(tensors, Math.max(8, count * 2));
        tensors[count++] = t;
    }

    TensorScope parent() {
        return parent;
    }

    /** How many tensors this scope has taken in so far (closed and kept ones included). */
    public int size() {
        return count;
    }

    /** Frees every tensor this scope still owns. Closing twice is a no-op. */
    @Override
    public void close() {
        if (closed) return;
        if (Thread.currentThread() != owner) {
            throw new IllegalStateException("a tensor scope must be closed on the thread that opened it ("
                    + owner.getName() + ")");
        }
        if (thread.scope != this) {
            throw new IllegalStateException("tensor scopes must be closed innermost first");
        }
        closed = true;
        thread.scope = parent;
        for (int i = count - 1; i >= 0; i--) {
            tensors[i].releaseFromScope(this);
            tensors[i] = null;
        }
        count = 0;
    }
}
