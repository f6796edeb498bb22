package dev.lora4j.benchmarks.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
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
 * DJL's linear forward pass, the peer of lora4j's {@code LinearBenchmark}:
 * {@code x[10,784]·W[1000,784]ᵀ + b}, float32, one intra-op thread. {@code linear} is DJL's
 * {@link Linear#linear} (torch::linear in the PyTorch engine, as lora4j's Functional.linear);
 * {@code matMul} is the same with NDArray ops (transpose, matMul, add: three results).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 3, jvmArgsAppend = {"-Dai.djl.pytorch.num_threads=1", "-Dai.djl.pytorch.num_interop_threads=1"})
public class DjlLinearBenchmark {

    private NDManager manager;
    private NDArray x;
    private NDArray w;
    private NDArray b;

    @Setup(Level.Trial)
    public void setUp() {
        manager = DjlEngineInfo.newManager();
        manager.getEngine().setRandomSeed(0);
        x = manager.randomNormal(new Shape(10, 784));
        w = manager.randomNormal(new Shape(1000, 784));
        b = manager.randomNormal(new Shape(1000));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        manager.close();
    }

    /** {@code Linear.linear(x, W, b)}, the result list closed. */
    @Benchmark
    public void linear() {
        try (NDList y = Linear.linear(x, w, b)) {
            // freed at once
        }
    }

    /** {@code x.matMul(W.transpose()).add(b)}, every intermediate closed. */
    @Benchmark
    public void matMul() {
        try (NDArray wt = w.transpose();
                NDArray xw = x.matMul(wt);
                NDArray y = xw.add(b)) {
            // freed at once
        }
    }
}
