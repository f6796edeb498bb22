package dev.lora4j.internal;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.TensorScope;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Loads LibTorch, uses it hard from several threads, then makes the JVM take many implicit null
 * checks (SIGSEGV in compiled code) and safepoints while LibTorch keeps working. Prints
 * "survived" when the JVM lived through it. Run by {@link SignalHandlersTest} in a child JVM.
 */
public final class SignalSurvivalMain {

    static final class Box {
        int value;
    }

    static final int THREADS = 2, ROUNDS = 10, NULLS = 2_000;

    private SignalSurvivalMain() {}

    /** A field read that C2 compiles with an implicit null check (a SIGSEGV when box is null). */
    static int read(Box box) {
        return box.value;
    }

    public static void main(String[] args) throws Exception {
        System.out.println("LibTorch " + Torch.version() + ", restored: " + Torch.buildInfo().signalHandlersRestored());
        AtomicLong npes = new AtomicLong();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            Thread thread = new Thread(() -> {
                Box box = new Box();
                for (int round = 0; round < ROUNDS; round++) {
                    try (TensorScope scope = TensorScope.open()) {
                        Tensor a = Tensor.randn(64, 64);
                        Tensor b = a.matmul(a).relu().sum();
                        if (!Double.isFinite(b.item())) throw new AssertionError("not finite");
                    }
                    // Warm read() up on real boxes so that it is compiled with an implicit null check...
                    for (int i = 0; i < 20_000; i++) box.value += read(box) & 1;
                    // ...then take that check: a SIGSEGV the JVM's handler turns into an exception.
                    for (int i = 0; i < NULLS; i++) {
                        try {
                            read(null);
                        } catch (NullPointerException e) {
                            npes.incrementAndGet();
                        }
                    }
                    List<byte[]> garbage = new ArrayList<>();
                    for (int i = 0; i < 200; i++) garbage.add(new byte[16 * 1024]);
                    if (garbage.size() != 200) throw new AssertionError();
                }
            });
            threads.add(thread);
            thread.start();
        }
        for (Thread t : threads) t.join();
        System.gc();
        System.out.println("survived " + npes.get() + " null pointer exceptions");
        if (npes.get() != (long) THREADS * ROUNDS * NULLS) throw new AssertionError("missed null checks: " + npes.get());
    }
}
