package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Functional;
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
 * A small linear layer's forward pass, {@code x[10,784]·W[1000,784]ᵀ + b}, float32, one
 * intra-op thread: {@link Functional#linear} in a {@link TensorScope}, which frees the result.
 * The same work in DJL is {@code djl.DjlLinearBenchmark}; {@code benchmarks/run-djl.sh} runs both.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 3, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class LinearBenchmark {

    static final int BATCH = 10;
    static final int IN = 784;
    static final int OUT = 1000;

    private Tensor x;
    private Tensor w;
    private Tensor b;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        x = Tensor.randn(BATCH, IN);
        w = Tensor.randn(OUT, IN);
        b = Tensor.randn(OUT);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        x.close();
        w.close();
        b.close();
    }

    /** {@code F.linear(x, W, b)}; the scope frees the result. */
    @Benchmark
    public void linear() {
        try (TensorScope s = TensorScope.open()) {
            Functional.linear(x, w, b);
        }
    }
}
