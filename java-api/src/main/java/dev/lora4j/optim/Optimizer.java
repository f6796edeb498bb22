package dev.lora4j.optim;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.Tensor;
import dev.lora4j.TorchException;
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
 * <h2>Parameters</h2>
 * Each parameter is given once: a tensor listed twice, or listed with an {@link Tensor#alias()}
 * of it, is refused, as are two parameters that share memory (one a {@link Tensor#detach()} or
 * an overlapping view of the other): a step would update that memory once per listing, each time
 * with its own state (PyTorch refuses a tensor in two parameter groups for the same reason; tied
 * weights are one parameter). Parameters over disjoint parts of one buffer are separate; for a
 * non-contiguous one, all the memory its elements span counts, so interleaved strided views of
 * one buffer are refused too. The same parameter in two optimizers is allowed, as in PyTorch:
 * each steps it. {@link dev.lora4j.nn.Module#trainableParameters()} gives a module used twice
 * in a model once.
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
 *
 * <h2>Lifetime during calls</h2>
 * Every native call holds the optimizer's state lock, and so does freeing it ({@link #close()}
 * or the {@link Cleaner} safety net when the optimizer becomes unreachable unclosed): a close
 * that comes while a {@link #step()} runs on another thread waits for that step to finish, and
 * an optimizer used as a temporary ({@code new SGD(params, lr).step()}) is never freed under its
 * own step.
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

        /** Frees the native optimizer once no call holds the lock. */
        @Override
        public synchronized void run() {
            MemorySegment h = handle;
            handle = null;
            if (h != null) lt_optimizer_free(h);
        }

        /** The live handle; the caller holds this state's lock. */
        MemorySegment handle() {
            MemorySegment h = handle;
            if (h == null) throw new IllegalStateException("optimizer is closed");
            return h;
        }
    }

    @FunctionalInterface
    interface Factory {
        int create(MemorySegment params, long count, MemorySegment out);
    }

    Optimizer(String name, List<Tensor> params, Factory factory) {
        Objects.requireNonNull(params, "params");
        if (params.isEmpty()) throw new IllegalArgumentException(name + " needs at least one parameter");
        for (int i = 0; i < params.size(); i++) Objects.requireNonNull(params.get(i), "params[" + i + "]");
        this.params = List.copyOf(params);
        for (int i = 0; i < this.params.size(); i++) {
            Tensor p = this.params.get(i);
            if (!p.requiresGrad() || !p.isLeaf()) {
                throw new IllegalArgumentException(name + ": params[" + i + "] is not a leaf tensor that requires grad");
            }
        }
        Tensor[] operands = this.params.toArray(Tensor[]::new);
        MemorySegment[] handles = Calls.pinAll(operands, "params");
        PerThread t = PerThread.get();
        try {
            Status.check(factory.create(t.pointers(handles), handles.length, t.out0), name);
        } catch (TorchException e) {
            // The shim's own argument checks (a parameter given twice, two sharing memory).
            if (e.kind() == TorchException.Kind.VALUE) throw new IllegalArgumentException(name + ": " + e.nativeMessage(), e);
            throw e;
        } finally {
            Calls.unpinAll(operands);
        }
        this.state = new State(PerThread.pointer(t.out0));
        this.cleanable = CLEANER.register(this, state);
    }

    static void checkLr(double lr) {
        if (!(lr >= 0)) throw new IllegalArgumentException("learning rate must be >= 0, got " + lr);
    }

    /** The parameters, in the order given. */
    public final List<Tensor> params() {
        return params;
    }

    /** One update from the parameters' current gradients (parameters without one are skipped). */
    public final void step() {
        checkThread("step");
        try {
            synchronized (state) {
                Status.check(lt_optimizer_step(state.handle()), "step");
            }
        } finally {
            Reference.reachabilityFence(this);
        }
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
        try {
            synchronized (state) {
                Status.check(lt_optimizer_zero_grad(state.handle(), setToNone ? 1 : 0), "zeroGrad");
            }
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The learning rate. */
    public final double lr() {
        PerThread t = PerThread.get();
        try {
            synchronized (state) {
                Status.check(lt_optimizer_get_lr(state.handle(), t.out0), "lr");
            }
        } finally {
            Reference.reachabilityFence(this);
        }
        return t.out0.get(ValueLayout.JAVA_DOUBLE, 0);
    }

    /** Sets the learning rate (for schedules). */
    public final void setLr(double lr) {
        checkLr(lr);
        try {
            synchronized (state) {
                Status.check(lt_optimizer_set_lr(state.handle(), lr), "setLr");
            }
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Frees the optimizer's state and its references to the parameters, after a call running
     * on another thread (if any) has finished. Idempotent.
     */
    @Override
    public final void close() {
        cleanable.clean();
    }
}
