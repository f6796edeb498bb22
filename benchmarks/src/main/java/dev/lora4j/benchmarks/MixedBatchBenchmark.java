package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.nn.Functional;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
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
 * Mixed-batch LoRA: the LoRA update of a batch of 64 rows whose rows each pick one of 16
 * adapters of rank 8 (or none), on a {@code features}×{@code features} linear layer.
 * {@code bank}: lora4j's {@link AdapterBank} (two dense products for the whole batch);
 * {@code loop}: PEFT's approach, one gather / two products / reassembly per adapter present.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 2, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class MixedBatchBenchmark {

    @Param({"1024"})
    public int features;

    private static final int ADAPTERS = 16;
    private static final int RANK = 8;
    private static final int BATCH = 64;

    private AdapterBank bank;
    private final Map<String, Tensor[]> factors = new LinkedHashMap<>();
    private final Map<String, Double> scales = new LinkedHashMap<>();
    private Tensor x;
    private String[] names;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        bank = new AdapterBank(features, features);
        for (int i = 0; i < ADAPTERS; i++) {
            Tensor a = Tensor.randn(RANK, features).mul(0.01);
            Tensor b = Tensor.randn(features, RANK).mul(0.01);
            String name = "adapter" + i;
            bank.put(name, a, b, 2.0);
            factors.put(name, new Tensor[] {a, b});
            scales.put(name, 2.0);
        }
        x = Tensor.randn(BATCH, features);
        names = rowAdapters(BATCH, ADAPTERS);
    }

    /** A fixed random choice per row among {@code adapter0..adapter<n-1>} and the base (1 in n+1). */
    static String[] rowAdapters(int batch, int n) {
        Random r = new Random(1);
        String[] names = new String[batch];
        for (int i = 0; i < batch; i++) names[i] = r.nextInt(n + 1) == n ? AdapterBank.BASE : "adapter" + r.nextInt(n);
        return names;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        bank.close();
        factors.values().forEach(f -> {
            f[0].close();
            f[1].close();
        });
        x.close();
    }

    @Benchmark
    public double bank() {
        try (TensorScope s = TensorScope.open()) {
            return bank.delta(x, names).sum().item();
        }
    }

    @Benchmark
    public double loop() {
        try (TensorScope s = TensorScope.open()) {
            Map<String, List<Long>> rows = new LinkedHashMap<>();
            for (int i = 0; i < names.length; i++) rows.computeIfAbsent(names[i], k -> new ArrayList<>()).add((long) i);
            List<Tensor> parts = new ArrayList<>();
            long[] order = new long[names.length];
            int at = 0;
            for (var e : rows.entrySet()) {
                long[] idx = e.getValue().stream().mapToLong(Long::longValue).toArray();
                for (long i : idx) order[(int) i] = at++;
                if (e.getKey().equals(AdapterBank.BASE)) {
                    parts.add(Tensor.zeros(idx.length, features));
                    continue;
                }
                Tensor[] f = factors.get(e.getKey());
                Tensor sub = x.indexSelect(0, Tensor.of(idx, idx.length));
                parts.add(Functional.linear(Functional.linear(sub, f[0], null), f[1], null).mul(scales.get(e.getKey())));
            }
            Tensor stacked = Tensor.cat(parts, 0);
            return stacked.indexSelect(0, Tensor.of(order, order.length)).sum().item();
        }
    }
}
