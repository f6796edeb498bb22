package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.Critical;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 * Where the Java side of one call goes: {@code add} of two 1-element tensors with the result
 * freed, built up one layer at a time from the bare downcall to the public API (compare with
 * {@code lora4j_bench_native add}). Each step adds one thing to the one before:
 *
 * <ol>
 *   <li>{@code s1_raw}: the generated bindings' {@code lt_add} and {@code lt_tensor_free};
 *   <li>{@code s2_criticalFree}: the free as the API does it, a critical downcall;
 *   <li>{@code s3_status}: the out pointer in the thread's scratch memory ({@link PerThread}) and
 *       the status check;
 *   <li>{@code s4_pin}: both operands pinned and unpinned around the call (the in-use counts
 *       that keep a concurrently closed tensor's memory alive);
 *   <li>{@code s5_tensorInScope}: the result wrapped as a {@link Tensor} owned by an open
 *       scope and closed (what {@code a.add(b)} costs inside a {@link TensorScope});
 *   <li>{@code s6_api}: {@code try (Tensor c = a.add(b)) {}} with no scope: the result is
 *       unowned, so it is registered with the safety net and its bytes counted against the
 *       native budget, and unregistered on close (the comparison's work (a)).
 * </ol>
 *
 * Internal classes are used only here, to take the API apart; user code never sees them.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 2, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class PerCallBreakdown {

    private Tensor a;
    private Tensor b;
    private MemorySegment rawA;
    private MemorySegment rawB;
    private final MemorySegment scratch = MemorySegment.ofAddress(Arena.global().allocate(ValueLayout.ADDRESS).address())
            .reinterpret(8);
    /** A scope open for the whole trial, for s5; its list is emptied every 4096 calls. */
    private TensorScope scope;
    private int inScope;

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
        if (scope != null) scope.close();
        a.close();
        b.close();
        LibLora4j.lt_tensor_free(rawA);
        LibLora4j.lt_tensor_free(rawB);
    }

    @Benchmark
    public int s1_raw() {
        int status = LibLora4j.lt_add(rawA, rawB, 1.0, scratch);
        LibLora4j.lt_tensor_free(scratch.get(ValueLayout.ADDRESS, 0));
        return status;
    }

    @Benchmark
    public int s2_criticalFree() {
        int status = LibLora4j.lt_add(rawA, rawB, 1.0, scratch);
        Critical.free(scratch.get(ValueLayout.JAVA_LONG, 0));
        return status;
    }

    @Benchmark
    public void s3_status() {
        PerThread t = PerThread.get();
        Status.check(LibLora4j.lt_add(rawA, rawB, 1.0, t.out0), "add");
        Critical.free(PerThread.address(t.out0));
    }

    @Benchmark
    public void s4_pin() {
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

    @Benchmark
    public void s5_tensorInScope() {
        if (scope == null || ++inScope == 4096) {
            if (scope != null) scope.close();
            scope = TensorScope.open();
            inScope = 0;
        }
        try (Tensor c = a.add(b)) {
            // freed at once
        }
    }

    @Benchmark
    public void s6_api() {
        try (Tensor c = a.add(b)) {
            // freed at once
        }
    }
}
