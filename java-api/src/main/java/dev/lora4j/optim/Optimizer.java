package dev.lora4j.optim;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.Tensor;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.List;
import java.util.Objects;

/**
 * An optimizer backed by LibTorch's {@code torch::optim} implementation, over an explicit
 * list of parameters (leaf tensors that require gradients), as {@code torch.optim.*}.
 *
 * <h2>Ownership</h2>
 * The optimizer keeps its own references to the parameters and its state (momentum buffers,
 * Adam moments); {@link #close()} frees them. Closing a parameter's Java handle does not free
 * the parameter while an optimizer still holds it.
 *
 * <h2>Thread-safety</h2>
 * Training is single-threaded per model: the first {@link #step()} or {@link #zeroGrad()}
 * binds the optimizer to the calling thread, and a call from another thread while that
 * thread is alive throws {@link IllegalStateException} instead of racing on the parameters
 * and their gradients. To move training to another thread on purpose (a job handed between
 * pool threads), call {@link #handOver()} on the training thread first. {@link #lr()},
 * {@link #setLr} and {@link #close()} are not bound.
 */
public abstract sealed class Optimizer implements AutoCloseable permits SGD, Adam {

    private static final Cleaner CLEANER = Cleaner.create();

    private final List<Tensor> params;
    private final java.util.concurrent.atomic.AtomicReference<Thread> trainer = new java.util.concurrent.atomic.AtomicReference<>();
    private final State state;
    private final Cleaner.Cleanable cleanable;

    private static final class State implements Runnable {
        volatile MemorySegment handle;

        State(MemorySegment handle) {
            this.handle = handle;
        }

        @Override
        public void run() {
            MemorySegment h = handle;
            handle = null;
            if (h != null) lt_optimizer_free(h);
        }
    }

    @FunctionalInterface
    interface Factory {
        int create(MemorySegment params, long count, MemorySegment out);
    }

    Optimizer(String name, List<Tensor> params, Factory factory) {
        Objects.requireNonNull(params, "params");
        if (params.isEmpty()) throw new IllegalArgumentException(name + " needs at least one parameter");
        this.params = List.copyOf(params);
        MemorySegment[] handles = new MemorySegment[this.params.size()];
        for (int i = 0; i < handles.length; i++) {
            Tensor p = Objects.requireNonNull(this.params.get(i), "params[" + i + "]");
            if (!p.requiresGrad() || !p.isLeaf()) {
                throw new IllegalArgumentException(name + ": params[" + i + "] is not a leaf tensor that requires grad");
            }
            handles[i] = Calls.handle(p);
        }
        PerThread t = PerThread.get();
        Status.check(factory.create(t.pointers(handles), handles.length, t.out0), name);
        Reference.reachabilityFence(this.params);
        this.state = new State(PerThread.pointer(t.out0));
        this.cleanable = CLEANER.register(this, state);
    }

    static void checkLr(double lr) {
        if (!(lr >= 0)) throw new IllegalArgumentException("learning rate must be >= 0, got " + lr);
    }

    private MemorySegment handle() {
        MemorySegment h = state.handle;
        if (h == null) throw new IllegalStateException("optimizer is closed");
        return h;
    }

    /** The parameters, in the order given. */
    public final List<Tensor> params() {
        return params;
    }

    /** One update from the parameters' current gradients (parameters without one are skipped). */
    public final void step() {
        checkThread("step");
        Status.check(lt_optimizer_step(handle()), "step");
    }

    /** Binds this optimizer to the calling thread, or refuses when another live thread trains with it. */
    private void checkThread(String op) {
        Thread me = Thread.currentThread();
        while (true) {
            Thread t = trainer.get();
            if (t == me) return;
            if (t != null && t.isAlive()) {
                throw new IllegalStateException(op + " called on thread '" + me.getName() + "', but this optimizer trains on thread '"
                        + t.getName() + "': training is single-threaded per model (call handOver() on '" + t.getName()
                        + "' to move training to another thread)");
            }
            if (trainer.compareAndSet(t, me)) return;
        }
    }

    /**
     * Releases the optimizer from its training thread, so that the next {@link #step()} or
     * {@link #zeroGrad()} may come from another thread (which then trains with it). Call it on
     * the training thread when handing the training job over.
     */
    public final void handOver() {
        trainer.set(null);
    }

    /** Drops the gradients (PyTorch ≥ 2.0's default, {@code set_to_none=True}). */
    public final void zeroGrad() {
        zeroGrad(true);
    }

    /** Drops the gradients, or fills them with zeros when {@code setToNone} is false. */
    public final void zeroGrad(boolean setToNone) {
        checkThread("zeroGrad");
        Status.check(lt_optimizer_zero_grad(handle(), setToNone ? 1 : 0), "zeroGrad");
    }

    /** The learning rate. */
    public final double lr() {
        PerThread t = PerThread.get();
        Status.check(lt_optimizer_get_lr(handle(), t.out0), "lr");
        return t.out0.get(ValueLayout.JAVA_DOUBLE, 0);
    }

    /** Sets the learning rate (for schedules). */
    public final void setLr(double lr) {
        checkLr(lr);
        Status.check(lt_optimizer_set_lr(handle(), lr), "setLr");
    }

    /** Frees the optimizer's state and its references to the parameters. Idempotent. */
    @Override
    public final void close() {
        cleanable.clean();
    }
}
