package dev.lora4j.benchmarks.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.util.ArrayList;
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
 * The comparison's DJL side (DJL 0.22.0, PyTorch engine on Debian's LibTorch 1.13.1): the same
 * work as {@code Lora4jWork}, written with DJL's public API as a DJL user would.
 *
 * <ul>
 *   <li>Tensors are {@link NDArray}s; every per-step intermediate lives in a sub-manager that is
 *       closed at the end of the step (the inputs are {@code tempAttach}ed to it, so the results of
 *       ops on them land there too), the idiom DJL's own trainer uses for a batch.
 *   <li>Autograd: parameters are {@code setRequiresGradient(true)}; a {@link GradientCollector}
 *       records the forward and runs {@code backward(loss)}.
 *   <li>Updates: DJL's own optimizers ({@code Optimizer.sgd()}, {@code Optimizer.adam()}, fixed
 *       learning rate 1e-3) through {@code Optimizer.update(id, weight, grad)}, as DJL's
 *       {@code ParameterStore} calls them, after which the gradient is zeroed in place
 *       ({@code grad.subi(grad)}, DJL's own way of zeroing).
 *   <li>DJL has no LoRA: the LoRA layers are written with NDArray ops exactly as PEFT computes
 *       them, {@code linear(x, W, b) + linear(linear(x, A), B)·s}.
 *   <li>(f) merged: W' = W + s·B·A computed once, then the plain forward with W'.
 * </ul>
 * Threads: {@code JniUtils.setNumThreads} (LibTorch intra-op) in setup; run-all.sh sets
 * OPENBLAS_NUM_THREADS to the same number.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 3, jvmArgsAppend = {"-Dai.djl.pytorch.num_interop_threads=1"})
public class DjlWork {

    static final int BATCH = 10;
    static final int IN = 784;
    static final int HIDDEN1 = 1000;
    static final int HIDDEN2 = 2000;
    static final int CLASSES = 10;

    @Param("1")
    public int threads;

    static NDManager start(int threads) {
        NDManager m = DjlEngineInfo.newManager();
        JniUtils.setNumThreads(threads);
        m.getEngine().setRandomSeed(0);
        return m;
    }

    /** PyTorch's default Linear init: U(-1/√in, 1/√in) for weight and bias. */
    static NDArray[] linearParams(NDManager m, int in, int out) {
        float bound = (float) (1 / Math.sqrt(in));
        return new NDArray[] {m.randomUniform(-bound, bound, new Shape(out, in)), m.randomUniform(-bound, bound, new Shape(out))};
    }

    static NDArray[] labels(NDManager m) {
        long[] y0 = new long[BATCH];
        long[] y1 = new long[BATCH];
        for (int i = 0; i < BATCH; i++) {
            y0[i] = i % CLASSES;
            y1[i] = (i + 1) % CLASSES;
        }
        return new NDArray[] {m.create(y0), m.create(y1)};
    }

    /** One optimizer update of every parameter from its gradient, then the gradient zeroed. */
    static void update(Optimizer opt, List<String> ids, List<NDArray> params) {
        for (int i = 0; i < params.size(); i++) {
            NDArray p = params.get(i);
            try (NDArray g = p.getGradient()) {
                opt.update(ids.get(i), p, g);
                g.subi(g);
            }
        }
    }

    // ------------------------------------------------------------------ (a) add

    @State(Scope.Thread)
    public static class AddState {
        NDManager m;
        NDArray a;
        NDArray b;

        @Setup(Level.Trial)
        public void setUp(DjlWork w) {
            m = start(w.threads);
            a = m.ones(new Shape(1));
            b = m.ones(new Shape(1));
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            m.close();
        }
    }

    @Benchmark
    public void add(AddState s) {
        try (NDArray c = s.a.add(s.b)) {
            // freed at once
        }
    }

    // ------------------------------------------------------------------ (b) linear

    @State(Scope.Thread)
    public static class LinearState {
        NDManager m;
        NDArray x;
        NDArray w;
        NDArray b;

        @Setup(Level.Trial)
        public void setUp(DjlWork work) {
            m = start(work.threads);
            x = m.randomNormal(new Shape(BATCH, IN));
            w = m.randomNormal(new Shape(HIDDEN1, IN));
            b = m.randomNormal(new Shape(HIDDEN1));
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            m.close();
        }
    }

    @Benchmark
    public void linear(LinearState s) {
        try (NDList y = Linear.linear(s.x, s.w, s.b)) {
            // freed at once
        }
    }

    // ------------------------------------------------------------------ (c) LoRA-linear step

    @State(Scope.Thread)
    public static class LoraState {
        NDManager m;
        NDArray x;
        NDArray w;
        NDArray b;
        NDArray a;
        NDArray bb;
        float scale = 8f / 4f;
        Optimizer sgd;
        List<NDArray> params;
        List<String> ids = List.of("lora_A", "lora_B");
        float lastLoss;

        @Setup(Level.Trial)
        public void setUp(DjlWork work) {
            m = start(work.threads);
            NDArray[] base = linearParams(m, IN, HIDDEN1);
            w = base[0];
            b = base[1];
            // PEFT's init: A kaiming-uniform(a=√5) = U(-1/√in, 1/√in), B zeros.
            float bound = (float) (1 / Math.sqrt(IN));
            a = m.randomUniform(-bound, bound, new Shape(4, IN));
            bb = m.zeros(new Shape(HIDDEN1, 4));
            a.setRequiresGradient(true);
            bb.setRequiresGradient(true);
            params = List.of(a, bb);
            sgd = Optimizer.sgd().setLearningRateTracker(Tracker.fixed(1e-3f)).build();
            x = m.randomNormal(new Shape(BATCH, IN));
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[djl] loraStep last loss " + lastLoss);
            m.close();
        }
    }

    static NDArray loraLinear(NDArray x, NDArray w, NDArray b, NDArray a, NDArray bb, float scale) {
        NDArray base = Linear.linear(x, w, b).singletonOrThrow();
        NDArray down = Linear.linear(x, a).singletonOrThrow();
        NDArray up = Linear.linear(down, bb).singletonOrThrow();
        return base.add(up.mul(scale));
    }

    @Benchmark
    public float loraStep(LoraState s) {
        try (NDManager step = s.m.newSubManager()) {
            s.x.tempAttach(step);
            NDArray loss;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                loss = loraLinear(s.x, s.w, s.b, s.a, s.bb, s.scale).square().mean();
                gc.backward(loss);
            }
            update(s.sgd, s.ids, s.params);
            return s.lastLoss = loss.getFloat();
        }
    }

    // ------------------------------------------------------------------ (d) MLP step

    @State(Scope.Thread)
    public static class MlpState {
        NDManager m;
        NDArray x;
        NDArray[] y;
        List<NDArray> params = new ArrayList<>();
        List<String> ids = new ArrayList<>();
        Optimizer adam;
        Loss loss = Loss.softmaxCrossEntropyLoss();
        int step;
        float lastLoss;

        @Setup(Level.Trial)
        public void setUp(DjlWork work) {
            m = start(work.threads);
            int[] sizes = {IN, HIDDEN1, HIDDEN2, CLASSES};
            for (int l = 0; l < 3; l++) {
                for (NDArray p : linearParams(m, sizes[l], sizes[l + 1])) {
                    p.setRequiresGradient(true);
                    ids.add("p" + params.size());
                    params.add(p);
                }
            }
            adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
            x = m.randomNormal(new Shape(BATCH, IN));
            y = labels(m);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[djl] mlpStep last loss " + lastLoss);
            m.close();
        }
    }

    static NDArray mlp(NDArray x, List<NDArray> p) {
        NDArray h1 = Activation.relu(Linear.linear(x, p.get(0), p.get(1)).singletonOrThrow());
        NDArray h2 = Activation.relu(Linear.linear(h1, p.get(2), p.get(3)).singletonOrThrow());
        return Linear.linear(h2, p.get(4), p.get(5)).singletonOrThrow();
    }

    @Benchmark
    public float mlpStep(MlpState s) {
        NDArray label = s.y[s.step++ & 1];
        try (NDManager step = s.m.newSubManager()) {
            s.x.tempAttach(step);
            label.tempAttach(step);
            NDArray l;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                l = s.loss.evaluate(new NDList(label), new NDList(mlp(s.x, s.params)));
                gc.backward(l);
            }
            update(s.adam, s.ids, s.params);
            return s.lastLoss = l.getFloat();
        }
    }

    // ------------------------------------------------------------------ (e) MLP LoRA step

    @State(Scope.Thread)
    public static class MlpLoraState {
        NDManager m;
        NDArray x;
        NDArray[] y;
        List<NDArray> base = new ArrayList<>();
        List<NDArray> lora = new ArrayList<>();
        List<String> ids = new ArrayList<>();
        Optimizer adam;
        Loss loss = Loss.softmaxCrossEntropyLoss();
        float scale = 1f;
        int step;
        float lastLoss;

        @Setup(Level.Trial)
        public void setUp(DjlWork work) {
            m = start(work.threads);
            int[] sizes = {IN, HIDDEN1, HIDDEN2, CLASSES};
            for (int l = 0; l < 3; l++) {
                base.addAll(List.of(linearParams(m, sizes[l], sizes[l + 1])));
                float bound = (float) (1 / Math.sqrt(sizes[l]));
                NDArray a = m.randomUniform(-bound, bound, new Shape(1, sizes[l]));
                NDArray b = m.zeros(new Shape(sizes[l + 1], 1));
                a.setRequiresGradient(true);
                b.setRequiresGradient(true);
                lora.add(a);
                lora.add(b);
                ids.add("lora_A" + l);
                ids.add("lora_B" + l);
            }
            adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
            x = m.randomNormal(new Shape(BATCH, IN));
            y = labels(m);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[djl] mlpLoraStep last loss " + lastLoss);
            m.close();
        }

        NDArray forward(NDArray in) {
            NDArray h = in;
            for (int l = 0; l < 3; l++) {
                h = loraLinear(h, base.get(2 * l), base.get(2 * l + 1), lora.get(2 * l), lora.get(2 * l + 1), scale);
                if (l < 2) h = Activation.relu(h);
            }
            return h;
        }
    }

    @Benchmark
    public float mlpLoraStep(MlpLoraState s) {
        NDArray label = s.y[s.step++ & 1];
        try (NDManager step = s.m.newSubManager()) {
            s.x.tempAttach(step);
            label.tempAttach(step);
            NDArray l;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                l = s.loss.evaluate(new NDList(label), new NDList(s.forward(s.x)));
                gc.backward(l);
            }
            update(s.adam, s.ids, s.lora);
            return s.lastLoss = l.getFloat();
        }
    }

    // ------------------------------------------------------------------ (f) inference

    @State(Scope.Thread)
    public static class InferState {
        NDManager m;
        NDArray x;
        List<NDArray> base = new ArrayList<>();
        List<NDArray> merged = new ArrayList<>();

        @Setup(Level.Trial)
        public void setUp(DjlWork work) {
            m = start(work.threads);
            int[] sizes = {IN, HIDDEN1, HIDDEN2, CLASSES};
            for (int l = 0; l < 3; l++) {
                base.addAll(List.of(linearParams(m, sizes[l], sizes[l + 1])));
                NDArray[] own = linearParams(m, sizes[l], sizes[l + 1]);
                float bound = (float) (1 / Math.sqrt(sizes[l]));
                NDArray a = m.randomUniform(-bound, bound, new Shape(1, sizes[l]));
                NDArray b = m.randomNormal(new Shape(sizes[l + 1], 1));
                merged.add(own[0].add(b.matMul(a)).toType(DataType.FLOAT32, false)); // W + s·B·A, s = 1
                merged.add(own[1]);
            }
            x = m.randomNormal(new Shape(BATCH, IN));
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            m.close();
        }
    }

    private static void infer(NDArray x, List<NDArray> p) {
        try (NDManager step = x.getManager().newSubManager()) {
            x.tempAttach(step);
            mlp(x, p);
        }
    }

    @Benchmark
    public void inferBase(InferState s) {
        infer(s.x, s.base);
    }

    @Benchmark
    public void inferMerged(InferState s) {
        infer(s.x, s.merged);
    }
}
