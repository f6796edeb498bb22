package dev.lora4j;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.data.Batch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;
import dev.lora4j.optim.SGD;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * Programs that crashed the JVM (or leaked without bound) before lora4j's lifetime rules, run
 * by {@link NativeLifetimeTest} in child JVMs: a crash there fails the test instead of killing
 * the test run. Each prints {@code ok} and exits 0 when lora4j held; anything else is a failure.
 */
public final class LifetimeHazards {

    /** More than glibc's mmap threshold as lora4j tunes it (32 MiB): freeing it unmaps it. */
    private static final long BIG = 12L << 20;

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "races" -> races(Integer.parseInt(args[1]));
            case "view-outlives-net" -> viewOutlivesNet();
            case "temporary-optimizer" -> temporaryOptimizer(Integer.parseInt(args[1]));
            case "readme-without-close" -> readmeWithoutClose(Integer.parseInt(args[1]));
            case "strict" -> strict();
            case "grad-race" -> gradRace(Double.parseDouble(args[1]));
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.out.println("ok");
    }

    // ------------------------------------------------------------------ gradients read during a backward

    /**
     * Two threads run backward into the same leaves while two others read, zero and clear their
     * gradients and an optimizer steps on them, for {@code seconds}: misuse (the README asks for
     * one training thread per model), but one that may give odd numbers, never a crash. Autograd
     * replaces a leaf's gradient while another thread copies or frees it unless both hold the
     * leaf's accumulator lock.
     */
    private static void gradRace(double seconds) throws Exception {
        Tensor w = Tensor.randn(8, 8).requiresGrad_(true);
        Tensor b = Tensor.randn(8).requiresGrad_(true);
        Tensor x = Tensor.randn(4, 8);
        var opt = new dev.lora4j.optim.SGD(java.util.List.of(w, b), 1e-6);
        long end = System.nanoTime() + (long) (seconds * 1e9);
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.List<Thread> threads = new java.util.ArrayList<>();
        for (int k = 0; k < 2; k++) {
            threads.add(new Thread(() -> {
                while (System.nanoTime() < end) {
                    try (Tensor y = x.matmul(w).add(b).sum()) {
                        y.backward();
                    } catch (RuntimeException e) {
                        // LibTorch may refuse misuse with an exception: allowed
                    }
                }
            }));
        }
        threads.add(new Thread(() -> {
            while (System.nanoTime() < end) {
                try (Tensor g = w.grad(); Tensor h = b.grad()) {
                    if (g != null) g.sum().close();
                    if (h != null) h.sum().close();
                } catch (RuntimeException e) {
                    // allowed
                }
            }
        }));
        threads.add(new Thread(() -> {
            int i = 0;
            while (System.nanoTime() < end) {
                try {
                    if (i++ % 2 == 0) w.clearGrad();
                    else b.zeroGrad();
                    opt.step();
                } catch (RuntimeException e) {
                    // the optimizer may refuse a second thread: allowed
                }
            }
        }));
        for (Thread t : threads) {
            t.setUncaughtExceptionHandler((th, e) -> failure.set(e));
            t.start();
        }
        for (Thread t : threads) t.join();
        if (failure.get() != null) throw new AssertionError(failure.get());
    }

    // ------------------------------------------------------------------ close racing a call

    /**
     * One thread keeps running operations on whatever tensor, module or optimizer is current
     * while the main thread closes it: every failure must be an IllegalStateException.
     */
    private static void races(int rounds) throws Exception {
        race("tensor", rounds, () -> Tensor.randn(64, 64), t -> {
            try (Tensor r = t.matmul(t); Tensor s = t.sum(); Tensor c = t.clone()) {
                t.data().get(ValueLayout.JAVA_FLOAT, 0);
                if (r.numel() != 64 * 64 || c.numel() != 64 * 64 || !Double.isFinite(s.item())) throw new AssertionError();
            }
        }, Tensor::close);
        race("big tensor", rounds / 40, () -> Tensor.ones(BIG), t -> {
            try (Tensor s = t.sum()) {
                if (s.item() != BIG) throw new AssertionError(s.item());
            }
        }, Tensor::close);
        race("module", rounds / 8, () -> {
            Linear l = new Linear(128, 128);
            l.eval();
            return l;
        }, l -> {
            try (TensorScope s = TensorScope.open()) {
                l.forward(Tensor.ones(8, 128)).sum().item();
            }
        }, Linear::close);
        Tensor w = Tensor.randn(1 << 18).requiresGrad_(true);
        w.mul(w).sum().backward();
        race("optimizer", rounds / 8, () -> new SGD(List.of(w), SGD.lr(1e-6).momentum(0.9)), SGD::step, SGD::close);
    }

    private interface Maker<T> {
        T make() throws Exception;
    }

    private static <T> void race(String what, int rounds, Maker<T> make, Consumer<T> use, Consumer<T> close) throws Exception {
        AtomicReference<T> current = new AtomicReference<>();
        AtomicReference<Throwable> wrong = new AtomicReference<>();
        Thread user = Thread.ofPlatform().start(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                T t = current.get();
                if (t == null) {
                    Thread.onSpinWait();
                    continue;
                }
                try {
                    use.accept(t);
                } catch (IllegalStateException expected) {
                    // closed under us: the one allowed outcome besides success
                } catch (Throwable e) {
                    wrong.set(e);
                    return;
                }
            }
        });
        long closedWhileInUse = 0;
        for (int i = 0; i < rounds && wrong.get() == null; i++) {
            T t = make.make();
            current.set(t);
            long spin = System.nanoTime() + 20_000 + (i % 7) * 30_000;
            while (System.nanoTime() < spin) Thread.onSpinWait();
            close.accept(t);
            current.compareAndSet(t, null);
            closedWhileInUse++;
        }
        user.interrupt();
        user.join();
        if (wrong.get() != null) throw new AssertionError(what + ": a use racing close failed with something else", wrong.get());
        System.out.println(what + ": " + closedWhileInUse + " closes raced uses");
    }

    // ------------------------------------------------------------------ views and the safety net

    /** A data() view of a tensor nobody refers to any more, read after collections. */
    private static void viewOutlivesNet() throws Exception {
        long reclaimed = Torch.reclaimedTensorCount();
        MemorySegment view = viewOfUnreferencedTensor();
        for (int i = 0; i < 5; i++) {
            System.gc();
            Thread.sleep(50);
        }
        for (long i = 0; i < BIG; i += 4096) {
            float v = view.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            if (v != 1f) throw new AssertionError("view reads " + v + " at " + i);
        }
        if (Torch.reclaimedTensorCount() != reclaimed) throw new AssertionError("the safety net freed a tensor under its view");
        view = null;
        for (int i = 0; i < 100 && Torch.reclaimedTensorCount() == reclaimed; i++) {
            System.gc();
            Thread.sleep(20);
        }
        if (Torch.reclaimedTensorCount() != reclaimed + 1) throw new AssertionError("the tensor was not reclaimed after its view");
    }

    private static MemorySegment viewOfUnreferencedTensor() {
        return Tensor.ones(BIG).data();
    }

    // ------------------------------------------------------------------ owners reachable across downcalls

    /**
     * {@code new SGD(params, lr).step()} in a loop, compiled, with collections running all the
     * time: the optimizer is unreachable during its own step once the JIT sees it is not used after.
     */
    private static void temporaryOptimizer(int steps) throws Exception {
        Tensor w = Tensor.randn(1 << 16).requiresGrad_(true);
        w.mul(w).sum().backward();
        Thread gc = Thread.ofPlatform().daemon().start(() -> {
            while (true) {
                System.gc();
                Thread.onSpinWait();
            }
        });
        for (int i = 0; i < steps; i++) stepOnce(w);
        if (!gc.isAlive()) throw new AssertionError();
    }

    private static void stepOnce(Tensor w) {
        new SGD(List.of(w), SGD.lr(1e-9).momentum(0.5)).step();
    }

    // ------------------------------------------------------------------ native memory the GC cannot see

    /**
     * The README's LoRA training loop in PyTorch's habit: no close, no scope. Prints the
     * resident memory outside the JVM's pools after {@code steps / 20} and after {@code steps}.
     */
    private static void readmeWithoutClose(int steps) throws Exception {
        Torch.manualSeed(0);
        long[] labels = new long[64];
        for (int i = 0; i < labels.length; i++) labels[i] = i % 10;
        TensorDataset data = new TensorDataset(Tensor.randn(64, 784), Tensor.of(labels, 64));
        Sequential model = new Sequential(new Linear(784, 256), Activation.relu(), new Linear(256, 10));
        Lora.wrap(model, LoraConfig.of(8, 16).withTargetModules("all-linear"));
        AdamW opt = new AdamW(model.trainableParameters(), 1e-3);
        long warm = 0;
        int step = 0;
        while (step < steps) {
            for (Batch b : data.loader(32, true, step, false)) {
                opt.zeroGrad();
                crossEntropy(model.forward(b.inputs()), b.targets()).backward();
                opt.step();
                if (++step == steps / 20) warm = MemoryTest.residentSetSize();
            }
        }
        long end = MemoryTest.residentSetSize();
        System.out.println("rssWarm=" + warm + " rssEnd=" + end + " reclaimed=" + Torch.reclaimedTensorCount());
    }

    /** Strict mode: leaking past the budget throws, naming where the leaked tensors came from. */
    private static void strict() {
        try {
            leakyLoop();
            throw new AssertionError("strict mode did not throw");
        } catch (IllegalStateException e) {
            String m = e.getMessage();
            if (!m.contains("lora4j.strictUnowned") || !m.contains("leakyLoop")) throw new AssertionError(m, e);
            System.out.println(m);
        }
    }

    private static void leakyLoop() {
        for (int i = 0; i < 10_000; i++) Tensor.ones(1 << 16);
    }
}
