package dev.lora4j.benchmarks.mixed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.models.bert.BertModel;
import java.util.List;
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
 * Mixed-batch serving against the number of distinct adapters in a batch, on a MiniLM-shaped
 * encoder ({@link MiniLmFixture}) with {@value #RESIDENT} adapters of rank 8 resident on query
 * and value: a batch of {@code batch} rows × {@code seq} tokens whose rows use
 * {@code adaptersInBatch} different adapters (at 512, {@code batch} different ones drawn from
 * the 512). Three algorithms on the same LibTorch and Tensor API: {@code fused} (lora4j,
 * {@link Lora#withRowAdapters}), {@code peftLoop} (PEFT's per-adapter loop) and {@code gather}
 * (vLLM CPU / punica bgmv: gathered factors, batched products); see {@link MixedAlgorithms}.
 * {@code target=encoder} times the whole encoder forward (the base model included);
 * {@code target=delta} only the LoRA update of one query-shaped layer (384 → 384, the same 512
 * adapters) on a (batch, seq, 384) input, the part where the algorithms differ. One op = one batch; rows/s = ops/s × batch.
 * The set-up checks that the three give the same numbers.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 4, time = 3)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx4g"})
public class MixedScalingBenchmark {

    static final int RESIDENT = 512;

    @Param({"1", "8", "64", "512"})
    public int adaptersInBatch;

    @Param({"encoder", "delta"})
    public String target;

    @Param({"64"})
    public int batch;

    @Param({"64"})
    public int seq;

    private BertModel model;
    private List<Switch> switches;
    private Tensor ids;
    private LoraLinear layer;
    private MixedAlgorithms.Stacks stacks;
    private Tensor x;
    private AdapterBank bank;
    private String[] rows;

    @Setup(Level.Trial)
    public void setUp() {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        rows = MiniLmFixture.rows(batch, adaptersInBatch, RESIDENT, 7);
        if (target.equals("delta")) {
            // One query-shaped layer with every resident adapter: the set-up of a whole encoder is not needed.
            layer = MiniLmFixture.layer(RESIDENT);
            stacks = MixedAlgorithms.Stacks.of(layer);
            x = Tensor.randn(batch, seq, MiniLmFixture.MINILM.hiddenSize());
            bank = new AdapterBank(layer.inFeatures(), layer.outFeatures());
            bank.putAll(layer);
        } else {
            model = MiniLmFixture.encoder(RESIDENT);
            switches = MiniLmFixture.installSwitches(model);
            ids = MiniLmFixture.ids(batch, seq, 3);
        }
        // The three algorithms agree (a benchmark of a wrong answer measures nothing).
        double fused = fused(), loop = peftLoop(), gather = gather();
        double tol = 1e-3 * Math.max(1, Math.abs(fused));
        if (Math.abs(fused - loop) > tol || Math.abs(fused - gather) > tol) {
            throw new IllegalStateException("algorithms disagree: fused " + fused + ", peftLoop " + loop + ", gather " + gather);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (AutoCloseable c : new AutoCloseable[] {model, layer, stacks, bank, ids, x}) {
            try {
                if (c != null) c.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private void use(Switch.Algorithm a) {
        for (Switch s : switches) {
            s.algorithm = a;
            s.rows = rows;
        }
    }

    /** A checksum of the output (the sum of squares, so signs do not cancel). */
    private static double checksum(Tensor y) {
        return y.pow(2).sum().item();
    }

    @Benchmark
    public double fused() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            if (target.equals("delta")) return checksum(bank.delta(x, rows));
            use(Switch.Algorithm.FUSED);
            return checksum(Lora.withRowAdapters(model, batch, () -> model.forward(ids, null, null), rows));
        }
    }

    @Benchmark
    public double peftLoop() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            if (target.equals("delta")) return checksum(MixedAlgorithms.peftLoop(x, rows, layer));
            use(Switch.Algorithm.PEFT_LOOP);
            return checksum(model.forward(ids, null, null));
        }
    }

    @Benchmark
    public double gather() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            if (target.equals("delta")) return checksum(MixedAlgorithms.gather(x, stacks.indices(rows), stacks));
            use(Switch.Algorithm.GATHER);
            return checksum(model.forward(ids, null, null));
        }
    }
}
