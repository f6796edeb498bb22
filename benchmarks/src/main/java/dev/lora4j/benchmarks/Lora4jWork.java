package dev.lora4j.benchmarks;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import dev.lora4j.optim.SGD;
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
 * The comparison's lora4j side, through the public API only: the same work as
 * {@code djl.DjlWork}, {@code benchmarks/native/bench_native.cpp} and
 * {@code benchmarks/python/bench.py} (see {@code benchmarks/run-all.sh}, which runs them all).
 * float32 throughout; {@code threads} is LibTorch's intra-op thread count (and OpenBLAS's:
 * {@link Torch#setNumThreads} sets both).
 *
 * <ul>
 *   <li>(a) {@code add}: two 1-element tensors, the result closed at once;
 *   <li>(b) {@code linear}: x[10,784]·W[1000,784]ᵀ + b, the result freed;
 *   <li>(c) {@code loraStep}: a {@link LoraLinear} 784→1000, r = 4, α = 8, frozen base: forward,
 *       mean of squares, backward, SGD (lr 1e-3) on A and B, gradients dropped;
 *   <li>(d) {@code mlpStep}: the seed-000 MLP 784→1000→2000→10 (ReLU), batch 10, cross-entropy,
 *       backward, Adam (lr 1e-3) over all parameters;
 *   <li>(e) {@code mlpLoraStep}: the same MLP wrapped by {@code Lora.wrap} (rank 1, α 1), base
 *       frozen, Adam over the six adapter factors;
 *   <li>(f) {@code inferBase} / {@code inferMerged}: the MLP's eval forward without grad, plain and
 *       with the rank-1 adapters merged ({@code Lora.merge}).
 * </ul>
 *
 * The training steps alternate between two label vectors for the same inputs, so the loss cannot
 * reach zero and the gradients stay ordinary numbers (no denormals) however long a run is.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 3, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class Lora4jWork {

    static final int BATCH = 10;
    static final int IN = 784;
    static final int HIDDEN1 = 1000;
    static final int HIDDEN2 = 2000;
    static final int CLASSES = 10;

    /** Intra-op threads (LibTorch and OpenBLAS). */
    @Param("1")
    public int threads;

    static void threads(int n) {
        Torch.setNumThreads(n);
        Torch.manualSeed(0);
    }

    static Sequential mlp() {
        return new Sequential(new Linear(IN, HIDDEN1), Activation.relu(), new Linear(HIDDEN1, HIDDEN2), Activation.relu(),
                new Linear(HIDDEN2, CLASSES));
    }

    /** Two label vectors for the same batch (labels i and (i + 1) mod 10 for row i). */
    static Tensor[] labels() {
        long[] y0 = new long[BATCH];
        long[] y1 = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            y0[i] = i % CLASSES;
            y1[i] = (i + 1) % CLASSES;
        }
        return new Tensor[] {Tensor.of(y0, BATCH), Tensor.of(y1, BATCH)};
    }

    // ------------------------------------------------------------------ (a) add

    @State(Scope.Thread)
    public static class AddState {
        Tensor a;
        Tensor b;

        @Setup(Level.Trial)
        public void setUp(Lora4jWork w) {
            threads(w.threads);
            a = Tensor.ones(1);
            b = Tensor.ones(1);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            a.close();
            b.close();
        }
    }

    /** (a) {@code try (Tensor c = a.add(b)) {}}. */
    @Benchmark
    public void add(AddState s) {
        try (Tensor c = s.a.add(s.b)) {
            // freed at once
        }
    }

    // ------------------------------------------------------------------ (b) linear

    @State(Scope.Thread)
    public static class LinearState {
        Tensor x;
        Tensor w;
        Tensor b;

        @Setup(Level.Trial)
        public void setUp(Lora4jWork work) {
            threads(work.threads);
            x = Tensor.randn(BATCH, IN);
            w = Tensor.randn(HIDDEN1, IN);
            b = Tensor.randn(HIDDEN1);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            x.close();
            w.close();
            b.close();
        }
    }

    /** (b) {@code F.linear(x, W, b)}, the result closed. */
    @Benchmark
    public void linear(LinearState s) {
        try (Tensor y = Functional.linear(s.x, s.w, s.b)) {
            // freed at once
        }
    }

    // ------------------------------------------------------------------ (c) LoRA-linear step

    @State(Scope.Thread)
    public static class LoraState {
        LoraLinear layer;
        SGD sgd;
        Tensor x;
        double lastLoss;

        @Setup(Level.Trial)
        public void setUp(Lora4jWork work) {
            threads(work.threads);
            layer = new LoraLinear(new Linear(IN, HIDDEN1), LoraConfig.of(4, 8));
            sgd = new SGD(List.of(layer.loraA(), layer.loraB()), 1e-3);
            x = Tensor.randn(BATCH, IN);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[lora4j] loraStep last loss " + lastLoss);
            sgd.close();
            layer.close();
            x.close();
        }
    }

    /** (c) forward, mean of squares, backward, SGD on A and B. */
    @Benchmark
    public double loraStep(LoraState s) {
        try (TensorScope scope = TensorScope.open()) {
            Tensor loss = s.layer.forward(s.x).pow(2).mean();
            s.sgd.zeroGrad();
            loss.backward();
            s.sgd.step();
            return s.lastLoss = loss.item();
        }
    }

    // ------------------------------------------------------------------ (d) MLP step

    /** A training-step benchmark over the seed MLP: model, Adam, one batch, two label vectors alternating. */
    abstract static class MlpTraining {
        Sequential model;
        Adam adam;
        Tensor x;
        Tensor[] y;
        int step;
        double lastLoss;

        /** Builds the MLP, with rank-1 adapters and a frozen base when {@code lora}. */
        void open(Lora4jWork work, boolean lora) {
            threads(work.threads);
            model = mlp();
            if (lora) Lora.wrap(model, LoraConfig.of(1, 1));
            adam = new Adam(model.trainableParameters(), 1e-3);
            if (lora && adam.params().size() != 6) throw new IllegalStateException("expected 6 adapter factors, got " + adam.params().size());
            x = Tensor.randn(BATCH, IN);
            y = labels();
        }

        void close(String name) {
            System.out.println("[lora4j] " + name + " last loss " + lastLoss);
            adam.close();
            model.close();
            x.close();
            y[0].close();
            y[1].close();
        }

        /** Forward, cross-entropy, backward, Adam. */
        double trainStep() {
            try (TensorScope scope = TensorScope.open()) {
                Tensor loss = crossEntropy(model.forward(x), y[step++ & 1]);
                adam.zeroGrad();
                loss.backward();
                adam.step();
                return lastLoss = loss.item();
            }
        }
    }

    @State(Scope.Thread)
    public static class MlpState extends MlpTraining {
        @Setup(Level.Trial)
        public void setUp(Lora4jWork work) {
            open(work, false);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            close("mlpStep");
        }
    }

    /** (d) forward, cross-entropy, backward, Adam over all parameters. */
    @Benchmark
    public double mlpStep(MlpState s) {
        return s.trainStep();
    }

    // ------------------------------------------------------------------ (e) MLP LoRA step

    @State(Scope.Thread)
    public static class MlpLoraState extends MlpTraining {
        @Setup(Level.Trial)
        public void setUp(Lora4jWork work) {
            open(work, true);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            close("mlpLoraStep");
        }
    }

    /** (e) the LoRA fine-tuning step: frozen base, rank-1 adapters, Adam over the adapters. */
    @Benchmark
    public double mlpLoraStep(MlpLoraState s) {
        return s.trainStep();
    }

    // ------------------------------------------------------------------ (f) inference

    @State(Scope.Thread)
    public static class InferState {
        Sequential base;
        Sequential merged;
        Tensor x;

        @Setup(Level.Trial)
        public void setUp(Lora4jWork work) {
            threads(work.threads);
            build();
        }

        /** The base MLP, the same architecture with rank-1 adapters (B ≠ 0) merged, and the batch. */
        void build() {
            base = mlp();
            merged = mlp();
            Lora.wrap(merged, LoraConfig.of(1, 1));
            // A trained adapter has B != 0: give B some values so that merging changes W.
            try (var ng = Torch.noGrad()) {
                Lora.loraLayers(merged).values().forEach(l -> {
                    Tensor b = ((LoraLinear) l).loraB();
                    try (Tensor r = Tensor.randn(b.shape())) {
                        b.copy_(r);
                    }
                });
            }
            if (Lora.merge(merged, true) != 3) throw new IllegalStateException("expected 3 merged layers");
            base.eval();
            merged.eval();
            x = Tensor.randn(BATCH, IN);
            if (x.dtype() != DType.FLOAT32) throw new IllegalStateException();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            base.close();
            merged.close();
            x.close();
        }
    }

    /** (f) the base MLP's inference: eval, no grad, the logits freed. */
    @Benchmark
    public void inferBase(InferState s) {
        try (var ng = Torch.noGrad(); Tensor y = s.base.forward(s.x)) {
            // freed at once
        }
    }

    /** (f) the same MLP with rank-1 adapters merged into its weights. */
    @Benchmark
    public void inferMerged(InferState s) {
        try (var ng = Torch.noGrad(); Tensor y = s.merged.forward(s.x)) {
            // freed at once
        }
    }
}
