package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.bindings.LibLora4j;
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
    private final MemorySegment scratch = Arena.ofAuto().allocate(ValueLayout.ADDRESS);

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
