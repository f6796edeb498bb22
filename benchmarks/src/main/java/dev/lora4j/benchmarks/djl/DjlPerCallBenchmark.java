package dev.lora4j.benchmarks.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
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
 * DJL's per-call cost, the peer of lora4j's {@code PerCallBenchmark.add}: {@code add} of two
 * 1-element float tensors with the result closed at once. Needs DJL pointed at Debian's
 * LibTorch 1.13.1 (PYTORCH_LIBRARY_PATH etc.); run it with {@code benchmarks/run-djl.sh}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 3, jvmArgsAppend = {"-Dai.djl.pytorch.num_threads=1", "-Dai.djl.pytorch.num_interop_threads=1"})
public class DjlPerCallBenchmark {

    private NDManager manager;
    private NDArray a;
    private NDArray b;

    @Setup(Level.Trial)
    public void setUp() {
        manager = DjlEngineInfo.newManager();
        a = manager.ones(new Shape(1));
        b = manager.ones(new Shape(1));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        manager.close();
    }

    /** {@code try (NDArray c = a.add(b)) {}}: the result (attached to a's manager) is closed. */
    @Benchmark
    public void add() {
        try (NDArray c = a.add(b)) {
            // freed at once
        }
    }
}
