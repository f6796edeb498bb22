package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.Critical;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The per-call cost of lora4j: {@code add} of two 1-element float tensors with the result
 * freed. The same loop in C++ is {@code lora4j_bench_native add} (benchmarks/native); run
 * both with {@code benchmarks/run-per-call.sh}, which prints the ratio.
 *
 * <p>Where the Java side's time goes, one layer at a time from the bare downcall to the API,
 * each step adding one thing to the one before: {@link #addRawBindings} (the generated
 * bindings' {@code lt_add} and {@code lt_tensor_free}), {@link #addCriticalFree} (the free as
 * the API does it, a critical downcall), {@link #addStatus} (the out pointer in the thread's
 * scratch memory and the status check), {@link #addPinned} (both operands pinned around the
 * call: the in-use counts that keep a concurrently closed tensor's memory alive),
 * {@link #addInOpenScope} (the result wrapped as a Tensor owned by an open scope, and closed)
 * and {@link #add} (no scope: the result registered with the safety net, its bytes counted
 * against the native budget, and unregistered on close). Internal classes are used only for
 * these steps, to take the API apart; user code never sees them.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 3, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class PerCallBenchmark {

    private Tensor a;
    private Tensor b;
    private MemorySegment rawA;
    private MemorySegment rawB;
    /**
     * The out pointer of the raw steps: a global-scope view (as {@link PerThread}'s), since a
     * segment of an automatic arena costs an acquire and a release of that arena per downcall.
     */
    private final MemorySegment scratch =
            MemorySegment.ofAddress(Arena.global().allocate(ValueLayout.ADDRESS).address()).reinterpret(8);
    /** A scope open across calls, for {@link #addInOpenScope}; replaced every 4096 calls. */
    private TensorScope openScope;
    private int inOpenScope;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        a = Tensor.ones(1);
        b = Tensor.ones(1);
        MemorySegment shape = Arena.ofAuto().allocateFrom(ValueLayout.JAVA_LONG, 1);
        LibLora4j.lt_ones(shape, 1, 0, scratch);
        rawA = scratch.get(ValueLayout.ADDRESS, 0);
        LibLora4j.lt_ones(shape, 1, 0, scratch);
        rawB = scratch.get(ValueLayout.ADDRESS, 0);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (openScope != null) openScope.close();
        a.close();
        b.close();
        LibLora4j.lt_tensor_free(rawA);
        LibLora4j.lt_tensor_free(rawB);
    }

    /** {@code try (Tensor c = a.add(b)) {}}: the result is owned by the caller and closed. */
    @Benchmark
    public void add() {
        try (Tensor c = a.add(b)) {
            // freed at once
        }
    }

    /**
     * The floor under the Java API: the two generated downcalls (lt_add, lt_tensor_free) with
     * nothing else. It measures the FFM layer's share, to explain the API's overhead; user
     * code never calls the bindings.
     */
    @Benchmark
    public int addRawBindings() {
        MemorySegment out = scratch;
        int status = LibLora4j.lt_add(rawA, rawB, 1.0, out);
        LibLora4j.lt_tensor_free(out.get(ValueLayout.ADDRESS, 0));
        return status;
    }

    /** {@link #addRawBindings} with the free as the API does it: a critical downcall. */
    @Benchmark
    public int addCriticalFree() {
        int status = LibLora4j.lt_add(rawA, rawB, 1.0, scratch);
        Critical.free(scratch.get(ValueLayout.JAVA_LONG, 0));
        return status;
    }

    /** {@link #addCriticalFree} with the out pointer in the thread's scratch memory and the status check. */
    @Benchmark
    public void addStatus() {
        PerThread t = PerThread.get();
        Status.check(LibLora4j.lt_add(rawA, rawB, 1.0, t.out0), "add");
        Critical.free(PerThread.address(t.out0));
    }

    /** {@link #addStatus} on the tensors' handles, both pinned for the call. */
    @Benchmark
    public void addPinned() {
        PerThread t = PerThread.get();
        MemorySegment ha = Calls.pin(a, "self");
        try {
            MemorySegment hb = Calls.pin(b, "other");
            try {
                Status.check(LibLora4j.lt_add(ha, hb, 1.0, t.out0), "add");
            } finally {
                Calls.unpin(b);
            }
        } finally {
            Calls.unpin(a);
        }
        Critical.free(PerThread.address(t.out0));
    }

    /** {@code try (Tensor c = a.add(b)) {}} inside a scope that stays open (no scope cost per call). */
    @Benchmark
    public void addInOpenScope() {
        if (openScope == null || ++inOpenScope == 4096) {
            if (openScope != null) openScope.close();
            openScope = TensorScope.open();
            inOpenScope = 0;
        }
        try (Tensor c = a.add(b)) {
            // freed at once
        }
    }

    /**
     * The Java side's own cost, with the native work made trivial: a second handle to the same
     * tensor ({@code lt_shallow_copy}, a reference-count increment) created and closed through
     * the API. Compare with {@link #aliasRawBindings}.
     */
    @Benchmark
    public void alias() {
        try (Tensor c = a.alias()) {
            // freed at once
        }
    }

    /** {@link #alias}'s two downcalls alone, through the generated bindings. */
    @Benchmark
    public int aliasRawBindings() {
        MemorySegment out = scratch;
        int status = LibLora4j.lt_shallow_copy(rawA, out);
        LibLora4j.lt_tensor_free(out.get(ValueLayout.ADDRESS, 0));
        return status;
    }

    /** The same inside a scope, which frees the result when it closes. */
    @Benchmark
    public void addInScope() {
        try (TensorScope s = TensorScope.open()) {
            a.add(b);
        }
    }
}
