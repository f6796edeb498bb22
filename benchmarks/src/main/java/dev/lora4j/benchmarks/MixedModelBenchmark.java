package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * Mixed-batch serving through the public API: a 1024×1024 {@link LoraLinear} holding 16 named
 * adapters of rank 8, a batch of 64 rows each naming its adapter (or {@code __base__}), the
 * layer's whole output (base included). {@code lora4j}: {@link Lora#forward} (the layer's
 * cached {@link AdapterBank}, one fused call); {@code peftLoop}: PEFT's approach on the same
 * factors, base forward plus one gather / two products / scatter per adapter present.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 2, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class MixedModelBenchmark {

    private static final int FEATURES = 1024;
    private static final int ADAPTERS = 16;
    private static final int BATCH = 64;

    private LoraLinear layer;
    private Tensor x;
    private String[] names;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        layer = new LoraLinear(new Linear(FEATURES, FEATURES), "adapter0", LoraConfig.of(8, 16));
        for (int i = 1; i < ADAPTERS; i++) layer.addAdapter("adapter" + i, LoraConfig.of(8, 16));
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            for (String n : layer.adapterNames()) layer.loraB(n).copy_(Tensor.randn(FEATURES, 8).mul(0.01));
        }
        layer.eval();
        x = Tensor.randn(BATCH, FEATURES);
        names = MixedBatchBenchmark.rowAdapters(BATCH, ADAPTERS);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        layer.close();
        x.close();
    }

    @Benchmark
    public double lora4j() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            return Lora.forward(layer, x, names).sum().item();
        }
    }

    @Benchmark
    public double peftLoop() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Tensor base = layer.baseLayer().forward(x);
            Map<String, List<Long>> rows = new LinkedHashMap<>();
            for (int i = 0; i < names.length; i++) {
                if (!names[i].equals(AdapterBank.BASE)) rows.computeIfAbsent(names[i], k -> new ArrayList<>()).add((long) i);
            }
            List<Tensor> parts = new ArrayList<>();
            List<Long> order = new ArrayList<>();
            for (var e : rows.entrySet()) {
                long[] idx = e.getValue().stream().mapToLong(Long::longValue).toArray();
                order.addAll(e.getValue());
                Tensor sub = x.indexSelect(0, Tensor.of(idx, idx.length));
                String n = e.getKey();
                parts.add(Functional.linear(Functional.linear(sub, layer.loraA(n), null), layer.loraB(n), null).mul(layer.scaling(n)));
            }
            for (int i = 0; i < names.length; i++) if (names[i].equals(AdapterBank.BASE)) order.add((long) i);
            int missing = names.length - parts.stream().mapToInt(p -> (int) p.size(0)).sum();
            if (missing > 0) parts.add(Tensor.zeros(missing, FEATURES));
            long[] inverse = new long[names.length];
            for (int k = 0; k < inverse.length; k++) inverse[order.get(k).intValue()] = k;
            return base.add(Tensor.cat(parts, 0).indexSelect(0, Tensor.of(inverse, inverse.length))).sum().item();
        }
    }
}
