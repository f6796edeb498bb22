package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Linear;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What DoRA costs in inference: an unmerged {@link LoraLinear} 1024→1024 with r = 16 in eval
 * mode, no gradients, batch 8, float32, one intra-op thread; plain LoRA (one fused native call)
 * against DoRA (its row norm from the factors, x·Wᵀ again, the rescaling), and merged (a plain
 * linear layer) for reference.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class DoraBenchmark {

    @Param({"lora", "dora", "dora-merged"})
    public String kind;

    private LoraLinear layer;
    private Tensor x;
    private AutoCloseable noGrad;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        layer = new LoraLinear(new Linear(1024, 1024), LoraConfig.of(16, 32).withUseDora(!kind.equals("lora")));
        layer.eval();
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            layer.loraB().copy_(Tensor.randn(1024, 16).mul(0.01));
        }
        if (kind.equals("dora-merged")) layer.merge();
        x = Tensor.randn(8, 1024);
        noGrad = Torch.noGrad();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        noGrad.close();
        x.close();
        layer.close();
    }

    @Benchmark
    public void forward() {
        try (TensorScope s = TensorScope.open()) {
            layer.forward(x);
        }
    }
}
