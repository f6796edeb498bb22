package dev.lora4j.dylora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLayerTest.TransposedLinear;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraConv;
import dev.lora4j.lora.LoraEmbedding;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Conv1d;
import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import dev.lora4j.optim.AdamW;
import dev.lora4j.optim.Optimizer;
import dev.lora4j.optim.SGD;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * DyLoRA (Valipour et al.) checked against independent truth: the forward at every rank b against
 * a plain LoRA layer built from the cut factors (and against the formula in plain Java), the
 * frozen / nested gradient patterns against the analytic gradient, strict freezing through the
 * controller with Adam / AdamW, the rank sampler's distribution and seeding, merging at a chosen
 * rank, the run-time rank changes, model surgery and a small training run.
 */
class DyLoraTest {

    static final double TOL = 1e-12;

    // ------------------------------------------------------------------ helpers

    /** N(0,1)·scale float64 values from a seeded Java generator. */
    static Tensor randT(long seed, double scale, long... shape) {
        Random r = new Random(seed);
        double[] v = new double[Math.toIntExact(Arrays.stream(shape).reduce(1, (a, b) -> a * b))];
        for (int i = 0; i < v.length; i++) v[i] = scale * r.nextGaussian();
        return Tensor.of(v, shape);
    }

    /** Overwrites {@code p} (float64) with seeded N(0,1)·scale values. */
    static void randomize(Tensor p, long seed, double scale) {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            p.copy_(randT(seed, scale, p.shape()));
        }
    }

    static void copyInto(Tensor dst, Tensor src) {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            assertArrayEquals(dst.shape(), src.shape(), "copy shapes");
            dst.copy_(src);
        }
    }

    static double maxDiff(Tensor a, Tensor b) {
        assertArrayEquals(a.shape(), b.shape(), "shapes differ");
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            return a.sub(b).abs().max().item();
        }
    }

    static double maxAbs(Tensor a) {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            return a.abs().max().item();
        }
    }

    /** A float64 Linear with the same weight and bias as {@code src}. */
    static Linear copyLinear(Linear src) {
        Linear l = new Linear(src.inFeatures(), src.outFeatures(), src.bias() != null);
        l.to(DType.FLOAT64);
        copyInto(l.weight(), src.weight());
        if (src.bias() != null) copyInto(l.bias(), src.bias());
        return l;
    }

    static Embedding copyEmbedding(Embedding src) {
        Embedding e = new Embedding(src.numEmbeddings(), src.embeddingDim());
        e.to(DType.FLOAT64);
        copyInto(e.weight(), src.weight());
        return e;
    }

    static Conv2d copyConv2d(Conv2d src) {
        Conv2d c = new Conv2d(src.inChannels(), src.outChannels(), src.kernelSize(), src.stride(), src.padding(),
                src.dilation(), src.groups(), src.bias() != null);
        c.to(DType.FLOAT64);
        copyInto(c.weight(), src.weight());
        if (src.bias() != null) copyInto(c.bias(), src.bias());
        return c;
    }

    static Conv1d copyConv1d(Conv1d src) {
        Conv1d c = new Conv1d(src.inChannels(), src.outChannels(), src.kernelSize(), src.stride(), src.padding(),
                src.dilation(), src.groups(), src.bias() != null);
        c.to(DType.FLOAT64);
        copyInto(c.weight(), src.weight());
        if (src.bias() != null) copyInto(c.bias(), src.bias());
        return c;
    }

    /** Output of {@code m} on {@code x} under no-grad, owned by the current scope. */
    static Tensor out(Module m, Tensor x) {
        try (var ng = Torch.noGrad()) {
            return m.forward(x);
        }
    }

    /** A float64 DyLoraLinear (in→out, with bias) with random A and non-zero random B. */
    static DyLoraLinear dyLinear(long in, long out, LoraConfig cfg, long seed) {
        DyLoraLinear d = new DyLoraLinear(new Linear(in, out, true), cfg);
        d.to(DType.FLOAT64);
        randomize(d.loraA(), seed, 0.5);
        randomize(d.loraB(), seed + 1, 0.5);
        return d;
    }

    // ------------------------------------------------------------------ 1. forward at rank b

    /** At every rank b the DyLoraLinear forward equals a LoraLinear(rank b, alpha) with A[:b], B[:, :b]. */
    @Test
    void linearForwardAtEveryRankEqualsPlainLoraOfCutFactors() {
        Torch.manualSeed(1);
        double alpha = 3.0;
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, alpha), 10)) {
            Tensor x = randT(20, 1.0, 3, 5);
            Linear base = (Linear) dy.baseLayer();
            Tensor baseOut = out(base, x);
            for (int b = 1; b <= 6; b++) {
                dy.setRank(b);
                assertEquals(b, dy.rank());
                assertEquals(alpha / b, dy.scaling(), 1e-15, "scale at rank " + b);
                try (LoraLinear plain = new LoraLinear(copyLinear(base), LoraConfig.of(b, alpha))) {
                    plain.to(DType.FLOAT64);
                    assertArrayEquals(plain.loraA().shape(), new long[] {b, 5});
                    assertArrayEquals(plain.loraB().shape(), new long[] {4, b});
                    copyInto(plain.loraA(), dy.loraA().narrow(0, 0, b));
                    copyInto(plain.loraB(), dy.loraB().narrow(1, 0, b));
                    Tensor expected = out(plain, x);
                    // train mode (frozen-mode graph surgery) and eval mode give the same values
                    dy.train();
                    assertTrue(maxDiff(out(dy, x), expected) < TOL, "train-mode forward at rank " + b);
                    Tensor withGrad = dy.forward(x);
                    assertTrue(maxDiff(withGrad, expected) < TOL, "train-mode forward with grad at rank " + b);
                    dy.eval();
                    assertTrue(maxDiff(out(dy, x), expected) < TOL, "eval forward at rank " + b);
                    // the adapter really contributes at every rank (B non-zero)
                    assertTrue(maxDiff(expected, baseOut) > 1e-3, "adapter contributes at rank " + b);
                    // plain-Java formula: y = xWᵀ + bias + (α/b)·x·A[:b]ᵀ·B[:, :b]ᵀ
                    double[] got = out(dy, x).toDoubleArray();
                    double[] ref = javaLinearLora(x, base.weight(), base.bias(), dy.loraA(), dy.loraB(), b, alpha / b);
                    for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], TOL, "plain-Java formula at rank " + b);
                }
            }
        }
    }

    /** y = xWᵀ + bias + s·x·A[:b]ᵀ·B[:, :b]ᵀ in plain Java. */
    static double[] javaLinearLora(Tensor x, Tensor w, Tensor bias, Tensor a, Tensor bMat, int b, double s) {
        int n = (int) x.size(0), in = (int) x.size(1), out = (int) w.size(0), r = (int) a.size(0);
        double[] xv = x.toDoubleArray(), wv = w.toDoubleArray(), bv = bias.toDoubleArray();
        double[] av = a.toDoubleArray(), bm = bMat.toDoubleArray();
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) {
            double[] down = new double[b];
            for (int k = 0; k < b; k++) {
                double acc = 0;
                for (int j = 0; j < in; j++) acc += xv[i * in + j] * av[k * in + j];
                down[k] = acc;
            }
            for (int o = 0; o < out; o++) {
                double acc = bv[o];
                for (int j = 0; j < in; j++) acc += xv[i * in + j] * wv[o * in + j];
                double up = 0;
                for (int k = 0; k < b; k++) up += down[k] * bm[o * r + k];
                y[i * out + o] = acc + s * up;
            }
        }
        return y;
    }

    /** rsLoRA: the scale at rank b is α/√b, and the forward matches a plain rsLoRA LoraLinear. */
    @Test
    void rsloraScalesByAlphaOverSqrtB() {
        Torch.manualSeed(2);
        double alpha = 5.0;
        try (TensorScope s = TensorScope.open();
             DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, alpha).withRslora(true), 30)) {
            dy.eval();
            Tensor x = randT(31, 1.0, 3, 5);
            Linear base = (Linear) dy.baseLayer();
            for (int b = 1; b <= 6; b++) {
                dy.setRank(b);
                assertEquals(alpha / Math.sqrt(b), dy.scaling(), 1e-15, "rsLoRA scale at rank " + b);
                double[] got = out(dy, x).toDoubleArray();
                double[] ref = javaLinearLora(x, base.weight(), base.bias(), dy.loraA(), dy.loraB(), b, alpha / Math.sqrt(b));
                for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], TOL, "rsLoRA formula at rank " + b);
                try (LoraLinear plain = new LoraLinear(copyLinear(base), LoraConfig.of(b, alpha).withRslora(true))) {
                    plain.to(DType.FLOAT64);
                    copyInto(plain.loraA(), dy.loraA().narrow(0, 0, b));
                    copyInto(plain.loraB(), dy.loraB().narrow(1, 0, b));
                    assertTrue(maxDiff(out(dy, x), out(plain, x)) < TOL, "rsLoRA vs plain at rank " + b);
                }
            }
        }
    }

    /** DyLoraEmbedding at rank b equals LoraEmbedding(b, alpha) with A[:b], B[:, :b]. */
    @Test
    void embeddingForwardAtEveryRankEqualsPlainLoraOfCutFactors() {
        Torch.manualSeed(3);
        double alpha = 2.5;
        try (TensorScope s = TensorScope.open();
             DyLoraEmbedding dy = new DyLoraEmbedding(new Embedding(10, 5), LoraConfig.of(6, alpha))) {
            dy.to(DType.FLOAT64);
            assertArrayEquals(new long[] {6, 10}, dy.loraA().shape());
            assertArrayEquals(new long[] {5, 6}, dy.loraB().shape());
            randomize(dy.loraA(), 40, 0.7); // A starts at zeros (PEFT's embedding init)
            randomize(dy.loraB(), 41, 0.7);
            Tensor ids = Tensor.of(new long[] {0, 3, 9, 3, 7, 1, 5, 2}, 2, 4);
            Embedding base = (Embedding) dy.baseLayer();
            Tensor baseOut = out(base, ids);
            for (int b = 1; b <= 6; b++) {
                dy.setRank(b);
                try (LoraEmbedding plain = new LoraEmbedding(copyEmbedding(base), LoraConfig.of(b, alpha))) {
                    plain.to(DType.FLOAT64);
                    assertArrayEquals(plain.loraA().shape(), new long[] {b, 10});
                    assertArrayEquals(plain.loraB().shape(), new long[] {5, b});
                    copyInto(plain.loraA(), dy.loraA().narrow(0, 0, b));
                    copyInto(plain.loraB(), dy.loraB().narrow(1, 0, b));
                    Tensor expected = out(plain, ids);
                    dy.train();
                    assertTrue(maxDiff(dy.forward(ids), expected) < TOL, "train-mode embedding at rank " + b);
                    dy.eval();
                    assertTrue(maxDiff(out(dy, ids), expected) < TOL, "eval embedding at rank " + b);
                    assertTrue(maxDiff(expected, baseOut) > 1e-3, "adapter contributes at rank " + b);
                    // plain-Java: row id of the table + (α/b)·Σ_k A[k,id]·B[:,k]
                    double[] got = out(dy, ids).toDoubleArray();
                    double[] w = base.weight().toDoubleArray(), a = dy.loraA().toDoubleArray(), bm = dy.loraB().toDoubleArray();
                    long[] idv = ids.toLongArray();
                    for (int p = 0; p < idv.length; p++) {
                        int id = (int) idv[p];
                        for (int d = 0; d < 5; d++) {
                            double acc = 0;
                            for (int k = 0; k < b; k++) acc += a[k * 10 + id] * bm[d * 6 + k];
                            assertEquals(w[id * 5 + d] + alpha / b * acc, got[p * 5 + d], TOL, "embedding formula at rank " + b);
                        }
                    }
                }
            }
        }
    }

    /** DyLoraConv (Conv2d, stride 2, padding 1) at rank b equals LoraConv(b, alpha) with the cut factors. */
    @Test
    void conv2dForwardAtEveryRankEqualsPlainLoraOfCutFactors() {
        Torch.manualSeed(4);
        double alpha = 4.0;
        try (TensorScope s = TensorScope.open();
             DyLoraConv dy = new DyLoraConv(new Conv2d(3, 4, 3, 2, 1, 1, 1, true), LoraConfig.of(6, alpha))) {
            dy.to(DType.FLOAT64);
            assertArrayEquals(new long[] {6, 3, 3, 3}, dy.loraA().shape());
            assertArrayEquals(new long[] {4, 6, 1, 1}, dy.loraB().shape());
            randomize(dy.loraA(), 50, 0.5);
            randomize(dy.loraB(), 51, 0.5);
            Tensor x = randT(52, 1.0, 2, 3, 7, 7);
            Conv2d base = (Conv2d) dy.baseLayer();
            Tensor baseOut = out(base, x);
            for (int b = 1; b <= 6; b++) {
                dy.setRank(b);
                try (LoraConv plain = new LoraConv(copyConv2d(base), LoraConfig.of(b, alpha))) {
                    plain.to(DType.FLOAT64);
                    assertArrayEquals(plain.loraA().shape(), new long[] {b, 3, 3, 3});
                    assertArrayEquals(plain.loraB().shape(), new long[] {4, b, 1, 1});
                    copyInto(plain.loraA(), dy.loraA().narrow(0, 0, b));
                    copyInto(plain.loraB(), dy.loraB().narrow(1, 0, b));
                    Tensor expected = out(plain, x);
                    assertArrayEquals(new long[] {2, 4, 4, 4}, expected.shape());
                    dy.train();
                    assertTrue(maxDiff(dy.forward(x), expected) < TOL, "train-mode conv2d at rank " + b);
                    dy.eval();
                    assertTrue(maxDiff(out(dy, x), expected) < TOL, "eval conv2d at rank " + b);
                    assertTrue(maxDiff(expected, baseOut) > 1e-3, "adapter contributes at rank " + b);
                    // independent: base conv + a conv with the merged kernel (α/b)·(B·A).view(W.shape)
                    Tensor kernel = dy.loraB().narrow(1, 0, b).reshape(4, b)
                            .matmul(dy.loraA().narrow(0, 0, b).reshape(b, -1)).reshape(4, 3, 3, 3).mul(alpha / b);
                    Tensor viaKernel = baseOut.add(Functional.conv2d(x, kernel, null, 2, 1, 1, 1));
                    assertTrue(maxDiff(out(dy, x), viaKernel) < TOL, "conv2d via merged kernel at rank " + b);
                }
            }
        }
    }

    /** Bonus: Conv1d with dilation 2 and padding 2, same equivalence. */
    @Test
    void conv1dWithDilationForwardAtEveryRankEqualsPlainLora() {
        Torch.manualSeed(5);
        double alpha = 1.5;
        try (TensorScope s = TensorScope.open();
             DyLoraConv dy = new DyLoraConv(new Conv1d(2, 3, 3, 1, 2, 2, 1, true), LoraConfig.of(4, alpha))) {
            dy.to(DType.FLOAT64);
            randomize(dy.loraA(), 60, 0.5);
            randomize(dy.loraB(), 61, 0.5);
            Tensor x = randT(62, 1.0, 2, 2, 9);
            Conv1d base = (Conv1d) dy.baseLayer();
            dy.eval();
            for (int b = 1; b <= 4; b++) {
                dy.setRank(b);
                try (LoraConv plain = new LoraConv(copyConv1d(base), LoraConfig.of(b, alpha))) {
                    plain.to(DType.FLOAT64);
                    copyInto(plain.loraA(), dy.loraA().narrow(0, 0, b));
                    copyInto(plain.loraB(), dy.loraB().narrow(1, 0, b));
                    assertTrue(maxDiff(out(dy, x), out(plain, x)) < TOL, "conv1d at rank " + b);
                }
            }
        }
    }

    // ------------------------------------------------------------------ 2. gradients

    /**
     * Frozen mode: only row b-1 of A and column b-1 of B get a gradient, equal to the analytic
     * one; nested mode: rows/columns 0..b-1, all equal to the analytic gradient; the rest exactly 0.
     */
    @Test
    void frozenAndNestedGradientPatternsMatchAnalyticGradient() {
        Torch.manualSeed(6);
        double alpha = 2.0;
        int rMax = 6;
        for (DyLoraLayer.Mode mode : DyLoraLayer.Mode.values()) {
            for (int b = 1; b <= rMax; b++) {
                try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(rMax, alpha), 70)) {
                    assertEquals(DyLoraLayer.Mode.FROZEN, dy.mode(), "default mode is frozen");
                    dy.setMode(mode);
                    dy.train();
                    dy.setRank(b);
                    Tensor x = randT(71, 1.0, 3, 5);
                    Tensor c = randT(72, 1.0, 3, 4);
                    dy.forward(x).mul(c).sum().backward();
                    Tensor gA = dy.loraA().grad();
                    Tensor gB = dy.loraB().grad();
                    assertNotNull(gA, "lora_A has a gradient");
                    assertNotNull(gB, "lora_B has a gradient");
                    assertNull(((Linear) dy.baseLayer()).weight().grad(), "base weight is frozen");
                    double sc = alpha / b;
                    // analytic: dL/dA[:b] = s·B[:, :b]ᵀ·Cᵀ·X ; dL/dB[:, :b] = s·Cᵀ·X·A[:b]ᵀ
                    Tensor eA = dy.loraB().detach().narrow(1, 0, b).t().matmul(c.t()).matmul(x).mul(sc);
                    Tensor eB = c.t().matmul(x).matmul(dy.loraA().detach().narrow(0, 0, b).t()).mul(sc);
                    for (int i = 0; i < rMax; i++) {
                        boolean active = mode == DyLoraLayer.Mode.FROZEN ? i == b - 1 : i < b;
                        Tensor rowA = gA.narrow(0, i, 1);
                        Tensor colB = gB.narrow(1, i, 1);
                        String where = mode + " rank " + b + " row " + i;
                        if (active) {
                            assertTrue(maxAbs(rowA) > 1e-6, "active A row has gradient: " + where);
                            assertTrue(maxAbs(colB) > 1e-6, "active B column has gradient: " + where);
                            assertTrue(maxDiff(rowA, eA.narrow(0, i, 1)) < TOL, "A row gradient = analytic: " + where);
                            assertTrue(maxDiff(colB, eB.narrow(1, i, 1)) < TOL, "B column gradient = analytic: " + where);
                        } else {
                            assertEquals(0.0, maxAbs(rowA), "inactive A row gradient exactly 0: " + where);
                            assertEquals(0.0, maxAbs(colB), "inactive B column gradient exactly 0: " + where);
                        }
                    }
                }
            }
        }
    }

    /** The same frozen/nested patterns on a DyLoraConv and a DyLoraEmbedding (rank along A dim 0, B dim 1). */
    @Test
    void gradientPatternsOnConvAndEmbedding() {
        Torch.manualSeed(7);
        int b = 3;
        for (DyLoraLayer.Mode mode : DyLoraLayer.Mode.values()) {
            try (TensorScope s = TensorScope.open();
                 DyLoraConv conv = new DyLoraConv(new Conv2d(2, 3, 3, 1, 1, 1, 1, true), LoraConfig.of(5, 2.0));
                 DyLoraEmbedding emb = new DyLoraEmbedding(new Embedding(8, 4), LoraConfig.of(5, 2.0))) {
                conv.to(DType.FLOAT64);
                emb.to(DType.FLOAT64);
                for (DyLoraLayer l : List.<DyLoraLayer>of(conv, emb)) {
                    randomize(l.loraA(), 80, 0.5);
                    randomize(l.loraB(), 81, 0.5);
                    l.setMode(mode);
                    l.setRank(b);
                }
                Tensor x = randT(82, 1.0, 2, 2, 5, 5);
                conv.forward(x).pow(2).sum().backward();
                Tensor ids = Tensor.of(new long[] {0, 1, 2, 3, 4, 5, 6, 7, 1, 2}, 2, 5);
                emb.forward(ids).pow(2).sum().backward();
                for (DyLoraLayer l : List.<DyLoraLayer>of(conv, emb)) {
                    Tensor gA = l.loraA().grad();
                    Tensor gB = l.loraB().grad();
                    for (int i = 0; i < 5; i++) {
                        boolean active = mode == DyLoraLayer.Mode.FROZEN ? i == b - 1 : i < b;
                        String where = l.getClass().getSimpleName() + " " + mode + " row " + i;
                        if (active) {
                            assertTrue(maxAbs(gA.narrow(0, i, 1)) > 1e-6, "active A row: " + where);
                            assertTrue(maxAbs(gB.narrow(1, i, 1)) > 1e-6, "active B column: " + where);
                        } else {
                            assertEquals(0.0, maxAbs(gA.narrow(0, i, 1)), "inactive A row: " + where);
                            assertEquals(0.0, maxAbs(gB.narrow(1, i, 1)), "inactive B column: " + where);
                        }
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ 3. strict mode

    /** Two DyLoraLinear layers (r_max 4) in a Sequential, float64, random non-zero factors, only lora_ trains. */
    static Sequential twoLayerModel(long seed) {
        Sequential m = new Sequential(new DyLoraLinear(new Linear(6, 5, true), LoraConfig.of(4, 4.0)),
                Activation.tanh(), new DyLoraLinear(new Linear(5, 3, true), LoraConfig.of(4, 4.0)));
        m.to(DType.FLOAT64);
        Lora.markOnlyLoraAsTrainable(m, LoraConfig.Bias.NONE);
        int k = 0;
        for (DyLoraLayer l : dyLayers(m)) {
            randomize(l.loraA(), seed + k++, 0.5);
            randomize(l.loraB(), seed + k++, 0.5);
        }
        return m;
    }

    static List<DyLoraLayer> dyLayers(Module m) {
        List<DyLoraLayer> out = new ArrayList<>();
        for (Module x : m.namedModules().values()) if (x instanceof DyLoraLayer d) out.add(d);
        return out;
    }

    /** What happened to the rows of the factors over a run of controller steps. */
    record RowReport(List<Integer> ranks, int inactiveRowsChanged, int inactiveRowsKept, int activeRowsChanged,
                     int activeRowsKept) {}

    static RowReport runSteps(DyLoraLayer.Mode mode, boolean strict, Function<List<Tensor>, Optimizer> optimizer,
                              long seed, int steps) {
        List<Integer> ranks = new ArrayList<>();
        int inChanged = 0, inKept = 0, actChanged = 0, actKept = 0;
        try (TensorScope scope = TensorScope.open(); Sequential model = twoLayerModel(seed)) {
            List<String> trainable = new ArrayList<>();
            model.namedParameters().forEach((n, p) -> {
                if (p.requiresGrad()) trainable.add(n);
            });
            assertEquals(List.of("0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"), trainable);
            DyLoraController ctl = DyLoraController.of(model, seed).strict(strict).mode(mode);
            Tensor x = randT(seed + 100, 1.0, 8, 6);
            Tensor y = randT(seed + 101, 1.0, 8, 3);
            List<DyLoraLayer> layers = dyLayers(model);
            try (Optimizer opt = optimizer.apply(model.trainableParameters())) {
                for (int step = 0; step < steps; step++) {
                    try (TensorScope s = TensorScope.open()) {
                        int b = ctl.rank();
                        ranks.add(b);
                        for (DyLoraLayer l : layers) assertEquals(b, l.rank(), "every layer at the controller's rank");
                        List<Tensor> a0 = new ArrayList<>(), b0 = new ArrayList<>();
                        try (var ng = Torch.noGrad()) {
                            for (DyLoraLayer l : layers) {
                                a0.add(l.loraA().clone());
                                b0.add(l.loraB().clone());
                            }
                        }
                        opt.zeroGrad();
                        Functional.mseLoss(model.forward(x), y).backward();
                        ctl.step(opt);
                        for (int li = 0; li < layers.size(); li++) {
                            DyLoraLayer l = layers.get(li);
                            for (int i = 0; i < l.rMax(); i++) {
                                boolean active = mode == DyLoraLayer.Mode.FROZEN ? i == b - 1 : i < b;
                                boolean sameA = l.loraA().narrow(0, i, 1).equal(a0.get(li).narrow(0, i, 1));
                                boolean sameB = l.loraB().narrow(1, i, 1).equal(b0.get(li).narrow(1, i, 1));
                                if (active) {
                                    actChanged += (sameA ? 0 : 1) + (sameB ? 0 : 1);
                                    actKept += (sameA ? 1 : 0) + (sameB ? 1 : 0);
                                } else {
                                    inChanged += (sameA ? 0 : 1) + (sameB ? 0 : 1);
                                    inKept += (sameA ? 1 : 0) + (sameB ? 1 : 0);
                                }
                            }
                        }
                    }
                }
            }
            assertEquals(steps, ctl.steps());
        }
        return new RowReport(ranks, inChanged, inKept, actChanged, actKept);
    }

    static Function<List<Tensor>, Optimizer> adamWd() {
        return p -> new Adam(p, Adam.lr(1e-2).weightDecay(0.1));
    }

    static Function<List<Tensor>, Optimizer> adamWWd() {
        return p -> new AdamW(p, AdamW.lr(1e-2).weightDecay(0.1));
    }

    /**
     * Strict (default) controller steps with Adam and AdamW (weight decay 0.1): every row/column
     * that was not trained in a step is bit-identical after it, in frozen and nested mode; the
     * trained ones move. Non-strict: weight decay and momentum move the untrained rows.
     */
    @Test
    void strictModeKeepsUntrainedRowsBitIdentical() {
        Torch.manualSeed(8);
        int steps = 10;
        for (DyLoraLayer.Mode mode : DyLoraLayer.Mode.values()) {
            for (var opt : List.of(adamWd(), adamWWd())) {
                RowReport strict = runSteps(mode, true, opt, 900, steps);
                String what = mode + " strict, ranks " + strict.ranks();
                assertTrue(new HashSet<>(strict.ranks()).size() > 1, "several ranks drawn: " + what);
                assertTrue(strict.ranks().stream().anyMatch(b -> b < 4), "some step below r_max: " + what);
                assertEquals(0, strict.inactiveRowsChanged(), "untrained rows bit-identical: " + what);
                assertTrue(strict.inactiveRowsKept() > 0, what);
                assertEquals(0, strict.activeRowsKept(), "every trained row moved: " + what);

                RowReport loose = runSteps(mode, false, opt, 900, steps);
                String lw = mode + " non-strict, ranks " + loose.ranks();
                assertEquals(strict.ranks(), loose.ranks(), "same seed, same rank schedule");
                assertEquals(0, loose.inactiveRowsKept(), "weight decay moves every untrained row: " + lw);
                assertTrue(loose.inactiveRowsChanged() > 0, lw);
            }
        }
    }

    /** Strict mode with Adam and no weight decay: momentum alone would move earlier-trained rows; strict keeps them. */
    @Test
    void strictModeAlsoBlocksMomentumOnlyDrift() {
        Torch.manualSeed(9);
        RowReport strict = runSteps(DyLoraLayer.Mode.FROZEN, true, p -> new Adam(p, 1e-2), 950, 12);
        assertEquals(0, strict.inactiveRowsChanged(), "strict, ranks " + strict.ranks());
        RowReport loose = runSteps(DyLoraLayer.Mode.FROZEN, false, p -> new Adam(p, 1e-2), 950, 12);
        assertTrue(loose.inactiveRowsChanged() > 0, "non-strict Adam momentum moves untrained rows, ranks " + loose.ranks());
    }

    // ------------------------------------------------------------------ 4. rank sampler

    @Test
    void uniformSamplerIsUniform() {
        RankSampler u = RankSampler.uniform(1, 8);
        Random r = new Random(2024);
        int n = 80_000;
        long[] counts = new long[9];
        for (int i = 0; i < n; i++) {
            int b = u.sample(r);
            assertTrue(b >= 1 && b <= 8, "rank in 1..8: " + b);
            counts[b]++;
        }
        double e = n / 8.0;
        double chi2 = 0;
        for (int b = 1; b <= 8; b++) {
            assertEquals(e, counts[b], 0.03 * e, "frequency of rank " + b + " " + Arrays.toString(counts));
            chi2 += (counts[b] - e) * (counts[b] - e) / e;
        }
        assertTrue(chi2 < 24.32, "chi-square " + chi2 + " below the 99.9% critical value for 7 dof");
    }

    @Test
    void samplerRangesWeightsAndBadArguments() {
        Random r = new Random(5);
        RankSampler u35 = RankSampler.uniform(3, 5);
        Set<Integer> seen = new TreeSet<>();
        for (int i = 0; i < 5000; i++) {
            int b = u35.sample(r);
            assertTrue(b >= 3 && b <= 5, "uniform(3,5) gave " + b);
            seen.add(b);
        }
        assertEquals(Set.of(3, 4, 5), seen);
        RankSampler one = RankSampler.uniform(2, 2);
        for (int i = 0; i < 100; i++) assertEquals(2, one.sample(r));

        RankSampler w = RankSampler.weighted(1, 0, 3);
        int n = 40_000;
        int[] c = new int[4];
        for (int i = 0; i < n; i++) {
            int b = w.sample(r);
            assertTrue(b >= 1 && b <= 3, "weighted rank " + b);
            c[b]++;
        }
        assertEquals(0, c[2], "zero weight never drawn");
        assertEquals(0.75, c[3] / (double) n, 0.015, "rank 3 about 75%");
        assertEquals(0.25, c[1] / (double) n, 0.015, "rank 1 about 25%");

        assertThrows(IllegalArgumentException.class, () -> RankSampler.uniform(0, 3));
        assertThrows(IllegalArgumentException.class, () -> RankSampler.uniform(-1, 3));
        assertThrows(IllegalArgumentException.class, () -> RankSampler.uniform(4, 3));
        assertThrows(IllegalArgumentException.class, () -> RankSampler.weighted(1, -1, 2));
        assertThrows(IllegalArgumentException.class, () -> RankSampler.weighted(0, 0));
        assertThrows(IllegalArgumentException.class, () -> RankSampler.weighted());
        assertThrows(IllegalArgumentException.class, () -> RankSampler.weighted(1, Double.NaN));
        assertThrows(NullPointerException.class, () -> RankSampler.weighted((double[]) null));
    }

    @Test
    void controllerSeedsDetermineTheRankSequence() {
        try (TensorScope s = TensorScope.open(); Sequential model = twoLayerModel(1000)) {
            // r_max 4 on both layers: of(model, seed) draws uniformly from 1..4
            List<Integer> a = drawSequence(DyLoraController.of(model, 77), 300);
            List<Integer> b = drawSequence(DyLoraController.of(model, 77), 300);
            List<Integer> c = drawSequence(DyLoraController.of(model, 78), 300);
            assertEquals(a, b, "same seed, same ranks");
            assertNotEquals(a, c, "different seeds, different ranks");
            assertEquals(Set.of(1, 2, 3, 4), new TreeSet<>(a), "uniform over 1..r_max");

            // through step(): two controllers with the same seed give the same rank() sequence
            try (SGD opt = new SGD(model.trainableParameters(), 0.0)) {
                DyLoraController c1 = DyLoraController.of(model, 5);
                List<Integer> s1 = new ArrayList<>();
                for (int i = 0; i < 50; i++) {
                    s1.add(c1.rank());
                    c1.step(opt);
                    for (DyLoraLayer l : dyLayers(model)) assertEquals(c1.rank(), l.rank(), "step sets the new rank on every layer");
                }
                DyLoraController c2 = DyLoraController.of(model, 5);
                List<Integer> s2 = new ArrayList<>();
                for (int i = 0; i < 50; i++) {
                    s2.add(c2.rank());
                    c2.step(opt);
                }
                assertEquals(s1, s2);
                assertEquals(50, c2.steps());
            }
            // the controller's r_max is the smallest layer's
            try (Sequential mixed = new Sequential(new DyLoraLinear(new Linear(3, 3), LoraConfig.of(6)),
                    new DyLoraLinear(new Linear(3, 3), LoraConfig.of(3)))) {
                Set<Integer> ranks = new TreeSet<>(drawSequence(DyLoraController.of(mixed, 3), 500));
                assertEquals(Set.of(1, 2, 3), ranks);
                DyLoraController fixed = DyLoraController.of(mixed, RankSampler.uniform(2, 2), 1);
                assertEquals(2, fixed.rank());
                fixed.setRank(1);
                for (DyLoraLayer l : dyLayers(mixed)) assertEquals(1, l.rank());
                assertThrows(IllegalArgumentException.class, () -> DyLoraController.of(mixed, RankSampler.uniform(5, 5), 1),
                        "sampler ranks beyond a layer's r_max");
            }
            try (Sequential none = new Sequential(new Linear(3, 3))) {
                assertThrows(IllegalArgumentException.class, () -> DyLoraController.of(none, 1), "no DyLoRA layer");
            }
        }
    }

    static List<Integer> drawSequence(DyLoraController c, int n) {
        List<Integer> out = new ArrayList<>();
        out.add(c.rank());
        for (int i = 0; i < n; i++) {
            int b = c.draw();
            assertEquals(b, c.rank());
            out.add(b);
        }
        return out;
    }

    // ------------------------------------------------------------------ 5. merge at a chosen rank

    @Test
    void mergeAtChosenRank() {
        Torch.manualSeed(10);
        double alpha = 3.0;
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(6, 5, LoraConfig.of(6, alpha), 110)) {
            dy.eval();
            Tensor x = randT(111, 1.0, 4, 6);
            dy.setRank(3);
            Tensor unmerged = out(dy, x);
            Tensor w = dy.baseLayer().parameter("weight");
            Tensor w0 = w.detach().clone();
            // independent ΔW at rank 3: (α/3)·B[:, :3]·A[:3]
            Tensor delta = dy.loraB().detach().narrow(1, 0, 3).matmul(dy.loraA().detach().narrow(0, 0, 3)).mul(alpha / 3);
            assertTrue(maxDiff(dy.deltaWeight(), delta) < TOL, "deltaWeight at rank 3");
            assertTrue(dy.merge());
            assertTrue(dy.isMerged());
            assertTrue(maxDiff(w, w0.add(delta)) < TOL, "merged weight = W + ΔW(rank 3)");
            assertTrue(maxDiff(out(dy, x), unmerged) < TOL, "merged forward = unmerged forward at rank 3");
            assertFalse(dy.merge(), "second merge is a no-op");
            assertTrue(maxDiff(w, w0.add(delta)) < TOL, "no double add");

            assertThrows(IllegalStateException.class, () -> dy.setRank(4), "setRank while merged");
            assertThrows(IllegalStateException.class, () -> dy.setRank(1), "setRank while merged");
            assertEquals(3, dy.rank(), "rank unchanged after refused setRank");
            assertThrows(IllegalStateException.class, () -> dy.setAlpha(1.0), "setAlpha while merged");
            assertThrows(IllegalStateException.class, () -> dy.truncateRank(2), "truncateRank while merged");
            assertThrows(IllegalStateException.class, () -> dy.padRank(8), "padRank while merged");
            assertThrows(IllegalStateException.class, () -> dy.reinitialize(2, 1.0), "reinitialize while merged");
            assertEquals(6, dy.rMax());

            assertTrue(dy.unmerge());
            assertFalse(dy.isMerged());
            assertTrue(maxDiff(w, w0) < TOL, "unmerge restores the weight");
            assertTrue(maxDiff(out(dy, x), unmerged) < TOL, "unmerged forward again");
            dy.setRank(4); // allowed again
            assertEquals(4, dy.rank());
        }
    }

    @Test
    void mergeAtChosenRankConvAndEmbeddingAndModelLevel() {
        Torch.manualSeed(11);
        try (TensorScope s = TensorScope.open();
             DyLoraConv conv = new DyLoraConv(new Conv2d(3, 4, 3, 2, 1, 1, 1, true), LoraConfig.of(6, 2.0));
             DyLoraEmbedding emb = new DyLoraEmbedding(new Embedding(9, 4), LoraConfig.of(6, 2.0))) {
            conv.to(DType.FLOAT64);
            emb.to(DType.FLOAT64);
            for (DyLoraLayer l : List.<DyLoraLayer>of(conv, emb)) {
                randomize(l.loraA(), 120, 0.5);
                randomize(l.loraB(), 121, 0.5);
                l.eval();
                l.setRank(3);
            }
            Tensor x = randT(122, 1.0, 2, 3, 6, 6);
            Tensor ids = Tensor.of(new long[] {8, 0, 4, 4, 2}, 5);
            Tensor cu = out(conv, x), eu = out(emb, ids);
            assertTrue(conv.merge());
            assertTrue(emb.merge());
            assertTrue(maxDiff(out(conv, x), cu) < TOL, "conv merged = unmerged at rank 3");
            assertTrue(maxDiff(out(emb, ids), eu) < TOL, "embedding merged = unmerged at rank 3");
            assertThrows(IllegalStateException.class, () -> conv.setRank(2));
            assertThrows(IllegalStateException.class, () -> emb.setRank(5));
            conv.unmerge();
            emb.unmerge();
        }
        // model level: DyLora.setRank then Lora.merge merges each layer at its rank
        try (TensorScope s = TensorScope.open(); Sequential model = twoLayerModel(130)) {
            model.eval();
            Tensor x = randT(131, 1.0, 5, 6);
            assertEquals(2, DyLora.setRank(model, 2));
            Tensor before = out(model, x);
            assertEquals(2, Lora.merge(model, false));
            assertTrue(maxDiff(out(model, x), before) < TOL, "model merged at rank 2 = unmerged");
            assertThrows(IllegalStateException.class, () -> DyLora.setRank(model, 3));
            assertEquals(2, Lora.unmerge(model));
            assertEquals(2, DyLora.setRank(model, 3));
        }
    }


    /** Merge at rank 2 for a fan_in_fan_out base, a Conv1d and a Conv3d: merged = unmerged, ΔW layout right. */
    @Test
    void mergeAtChosenRankFanInFanOutAndConv1d3d() {
        Torch.manualSeed(19);
        try (TensorScope s = TensorScope.open();
             DyLoraLinear t = new DyLoraLinear(new TransposedLinear(6, 5), LoraConfig.of(4, 2.0).withFanInFanOut(true));
             DyLoraConv c1 = new DyLoraConv(new Conv1d(3, 4, 3, 2, 1, 1, 1, true), LoraConfig.of(4, 2.0));
             DyLoraConv c3 = new DyLoraConv(new dev.lora4j.nn.Conv3d(2, 3, 3, 1, 1, 1, 1, true), LoraConfig.of(4, 2.0))) {
            List<DyLoraLayer> layers = List.of(t, c1, c3);
            List<Tensor> inputs = List.of(randT(190, 1.0, 3, 6), randT(191, 1.0, 2, 3, 9), randT(192, 1.0, 1, 2, 4, 4, 4));
            int k = 0;
            for (DyLoraLayer l : layers) {
                l.to(DType.FLOAT64);
                randomize(l.loraA(), 193 + k++, 0.5);
                randomize(l.loraB(), 193 + k++, 0.5);
                l.eval();
                l.setRank(2);
            }
            assertArrayEquals(new long[] {4, 6}, t.loraA().shape());
            assertArrayEquals(new long[] {5, 4}, t.loraB().shape());
            // fan_in_fan_out: ΔW is stored (in, out) = ((α/2)·B[:, :2]·A[:2])ᵀ
            Tensor expectedT = t.loraB().detach().narrow(1, 0, 2).matmul(t.loraA().detach().narrow(0, 0, 2)).mul(2.0 / 2).t();
            assertTrue(maxDiff(t.deltaWeight(), expectedT) < TOL, "fan_in_fan_out ΔW layout");
            for (int i = 0; i < layers.size(); i++) {
                DyLoraLayer l = layers.get(i);
                Tensor before = out(l, inputs.get(i));
                assertTrue(maxDiff(before, out(l.baseLayer(), inputs.get(i))) > 1e-3, "adapter active");
                l.merge();
                assertTrue(maxDiff(out(l, inputs.get(i)), before) < TOL, l.getClass().getSimpleName() + " #" + i + " merged at rank 2");
                l.unmerge();
                assertTrue(maxDiff(out(l, inputs.get(i)), before) < TOL, "unmerged again #" + i);
            }
        }
    }

    // ------------------------------------------------------------------ 6. run-time changes

    @Test
    void truncateRankKeepsLowerRanks() {
        Torch.manualSeed(12);
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, 3.0), 140)) {
            dy.eval();
            Tensor x = randT(141, 1.0, 3, 5);
            List<Tensor> before = new ArrayList<>();
            for (int b = 1; b <= 6; b++) {
                dy.setRank(b);
                before.add(out(dy, x));
            }
            dy.setRank(6);
            dy.truncateRank(4);
            assertEquals(4, dy.rMax());
            assertEquals(4, dy.rank(), "rank clamped to the new r_max");
            assertArrayEquals(new long[] {4, 5}, dy.loraA().shape());
            assertArrayEquals(new long[] {4, 4}, dy.loraB().shape());
            assertTrue(dy.loraA().requiresGrad() && dy.loraB().requiresGrad(), "new factors train");
            for (int b = 1; b <= 4; b++) {
                dy.setRank(b);
                assertTrue(maxDiff(out(dy, x), before.get(b - 1)) < TOL, "output at rank " + b + " after truncation");
            }
            assertThrows(IllegalArgumentException.class, () -> dy.setRank(5), "rank 5 no longer exists");
            assertThrows(IllegalArgumentException.class, () -> dy.truncateRank(0));
            assertThrows(IllegalArgumentException.class, () -> dy.truncateRank(5));
            assertEquals(4, dy.rMax());
            // the layer's parameter list holds the new factors
            assertArrayEquals(new long[] {4, 5}, dy.namedParameters().get("lora_A").shape());
            assertArrayEquals(new long[] {4, 4}, dy.namedParameters().get("lora_B").shape());
            assertTrue(trainableNames(dy).containsAll(Set.of("lora_A", "lora_B")));
        }
    }

    static Set<String> trainableNames(Module m) {
        Set<String> out = new TreeSet<>();
        m.namedParameters().forEach((n, p) -> {
            if (p.requiresGrad()) out.add(n);
        });
        return out;
    }

    @Test
    void padRankKeepsEveryOldRank() {
        Torch.manualSeed(13);
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(3, 3.0), 150)) {
            dy.eval();
            Tensor x = randT(151, 1.0, 3, 5);
            List<Tensor> before = new ArrayList<>();
            for (int b = 1; b <= 3; b++) {
                dy.setRank(b);
                before.add(out(dy, x));
            }
            Tensor a0 = dy.loraA().detach().clone(), b0 = dy.loraB().detach().clone();
            dy.padRank(7);
            assertEquals(7, dy.rMax());
            assertEquals(3, dy.rank(), "rank kept");
            assertEquals(DType.FLOAT64, dy.loraA().dtype());
            assertArrayEquals(new long[] {7, 5}, dy.loraA().shape());
            assertArrayEquals(new long[] {4, 7}, dy.loraB().shape());
            assertTrue(dy.loraA().narrow(0, 0, 3).equal(a0), "old A rows kept");
            assertTrue(dy.loraB().narrow(1, 0, 3).equal(b0), "old B columns kept");
            assertEquals(0.0, maxAbs(dy.loraB().narrow(1, 3, 4)), "new B columns are zero");
            assertTrue(maxAbs(dy.loraA().narrow(0, 3, 4)) > 0, "new A rows are initialised (can train)");
            assertTrue(dy.loraA().requiresGrad() && dy.loraB().requiresGrad(), "new factors train");
            for (int b = 1; b <= 3; b++) {
                dy.setRank(b);
                assertTrue(maxDiff(out(dy, x), before.get(b - 1)) < TOL, "output at old rank " + b + " after padding");
            }
            dy.setRank(7); // exists now
            dy.padRank(7); // same size: no-op
            assertEquals(7, dy.rMax());
            assertThrows(IllegalArgumentException.class, () -> dy.padRank(6));
            assertEquals(7, dy.rMax());
        }
    }

    @Test
    void reinitializeZeroesTheUpdate() {
        Torch.manualSeed(14);
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, 3.0), 160)) {
            dy.eval();
            Tensor x = randT(161, 1.0, 3, 5);
            Tensor base = out(dy.baseLayer(), x);
            assertTrue(maxDiff(out(dy, x), base) > 1e-3, "adapter active before");
            dy.reinitialize(2, 7.0);
            assertEquals(2, dy.rMax());
            assertEquals(2, dy.rank());
            assertEquals(7.0, dy.alpha());
            assertEquals(3.5, dy.scaling(), 1e-15);
            assertEquals(DType.FLOAT64, dy.loraA().dtype());
            for (int b = 1; b <= 2; b++) {
                dy.setRank(b);
                assertTrue(maxDiff(out(dy, x), base) < TOL, "ΔW = 0 after reinitialize, rank " + b);
            }
            assertEquals(0.0, maxAbs(dy.loraB()), "B zeros");
            assertTrue(maxAbs(dy.loraA()) > 0, "A initialised");
            assertThrows(IllegalArgumentException.class, () -> dy.reinitialize(0, 1.0));
            assertEquals(2, dy.rMax());
        }
    }

    /** A bad α in reinitialize must be refused without touching the layer (all-or-nothing). */
    @Test
    void reinitializeWithBadAlphaLeavesTheLayerUnchanged() {
        Torch.manualSeed(15);
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, 3.0), 165)) {
            dy.eval();
            dy.setRank(4);
            Tensor x = randT(166, 1.0, 3, 5);
            Tensor before = out(dy, x);
            assertThrows(IllegalArgumentException.class, () -> dy.reinitialize(3, 0.0));
            assertThrows(IllegalArgumentException.class, () -> dy.reinitialize(3, -1.0));
            assertThrows(IllegalArgumentException.class, () -> dy.reinitialize(3, Double.NaN));
            assertEquals(6, dy.rMax(), "r_max unchanged after a refused reinitialize");
            assertEquals(4, dy.rank(), "rank unchanged after a refused reinitialize");
            assertEquals(3.0, dy.alpha());
            assertTrue(maxDiff(out(dy, x), before) < TOL, "factors unchanged after a refused reinitialize");
        }
    }

    @Test
    void setAlphaScalesTheUpdate() {
        Torch.manualSeed(16);
        try (TensorScope s = TensorScope.open(); DyLoraLinear dy = dyLinear(5, 4, LoraConfig.of(6, 3.0), 170)) {
            dy.eval();
            Tensor x = randT(171, 1.0, 3, 5);
            Tensor base = out(dy.baseLayer(), x);
            for (int b : new int[] {1, 3, 6}) {
                dy.setAlpha(3.0);
                dy.setRank(b);
                Tensor upd = out(dy, x).sub(base);
                dy.setAlpha(7.5);
                assertEquals(7.5, dy.alpha());
                assertEquals(7.5 / b, dy.scaling(), 1e-15);
                Tensor upd2 = out(dy, x).sub(base);
                assertTrue(maxDiff(upd2, upd.mul(7.5 / 3.0)) < TOL, "update scales by new/old alpha at rank " + b);
            }
            assertThrows(IllegalArgumentException.class, () -> dy.setAlpha(0));
            assertThrows(IllegalArgumentException.class, () -> dy.setAlpha(-2));
            assertThrows(IllegalArgumentException.class, () -> dy.setAlpha(Double.NaN));
            assertEquals(7.5, dy.alpha());
            assertThrows(IllegalArgumentException.class, () -> dy.setRank(0));
            assertThrows(IllegalArgumentException.class, () -> dy.setRank(7));
        }
    }

    @Test
    void groupedConvIsRefused() {
        try (Conv2d grouped = new Conv2d(4, 6, 3, 1, 1, 1, 2, true)) {
            assertThrows(IllegalArgumentException.class, () -> new DyLoraConv(grouped, LoraConfig.of(4)));
        }
        try (Conv1d depthwise = new Conv1d(3, 3, 3, 1, 1, 1, 3, false)) {
            assertThrows(IllegalArgumentException.class, () -> new DyLoraConv(depthwise, LoraConfig.of(3)));
        }
    }

    // ------------------------------------------------------------------ 7. model surgery

    @Test
    void wrapSequentialAndSetRank() {
        Torch.manualSeed(17);
        try (TensorScope s = TensorScope.open();
             Sequential model = new Sequential(new Linear(6, 8), Activation.relu(), new Linear(8, 3))) {
            Lora.WrapReport rep = DyLora.wrap(model, LoraConfig.of(4, 8.0));
            assertEquals(List.of("0", "2"), rep.wrapped());
            assertInstanceOf(DyLoraLinear.class, model.get(0));
            assertInstanceOf(Activation.class, model.get(1));
            assertInstanceOf(DyLoraLinear.class, model.get(2));
            assertEquals(Set.of("0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"), trainableNames(model),
                    "only lora_ params train");
            assertTrue(model.namedParameters().containsKey("0.base_layer.bias"));
            assertFalse(model.namedParameters().get("0.base_layer.bias").requiresGrad(), "biases frozen (Bias.NONE)");
            DyLoraLinear l0 = (DyLoraLinear) model.get(0), l2 = (DyLoraLinear) model.get(2);
            assertEquals(4, l0.rMax());
            assertEquals(4, l2.rMax());
            assertEquals(2, DyLora.setRank(model, 2));
            assertEquals(2, l0.rank());
            assertEquals(2, l2.rank());
            assertThrows(IllegalArgumentException.class, () -> DyLora.setRank(model, 5));
            try (Tensor y = model.forward(Tensor.randn(3, 6))) {
                assertArrayEquals(new long[] {3, 3}, y.shape());
            }
            // with an Embedding and a Conv too, and the wrapper refusing anything else
            try (Sequential other = new Sequential(new Embedding(5, 4), new Conv1d(4, 4, 1))) {
                DyLora.wrap(other, LoraConfig.of(2));
                assertInstanceOf(DyLoraEmbedding.class, other.get(0));
                assertInstanceOf(DyLoraConv.class, other.get(1));
            }
            assertThrows(IllegalArgumentException.class, () -> DyLora.wrapper(Activation.relu(), LoraConfig.of(2)));
        }
    }

    // ------------------------------------------------------------------ 8. a tiny training run

    /** k orthonormal vectors of length m (Gram-Schmidt on seeded Gaussians), in plain Java. */
    static double[][] orthonormal(long seed, int m, int k) {
        Random r = new Random(seed);
        double[][] q = new double[k][m];
        for (int j = 0; j < k; j++) {
            for (int i = 0; i < m; i++) q[j][i] = r.nextGaussian();
            for (int p = 0; p < j; p++) {
                double dot = 0;
                for (int i = 0; i < m; i++) dot += q[j][i] * q[p][i];
                for (int i = 0; i < m; i++) q[j][i] -= dot * q[p][i];
            }
            double nrm = 0;
            for (int i = 0; i < m; i++) nrm += q[j][i] * q[j][i];
            nrm = Math.sqrt(nrm);
            for (int i = 0; i < m; i++) q[j][i] /= nrm;
        }
        return q;
    }

    static final int IN = 10, OUT = 8, N = 256, R_MAX = 4;
    static final double ALPHA = 4.0;

    /**
     * Regression data y = x·(W + D)ᵀ + 0.01·noise with D = u·vᵀ, u = [σ1·p1, σ2·p2], v = [q1, q2]
     * (orthonormal p, q, so σ1, σ2 are D's singular values) and whitened inputs (xᵀx/n = I, so the
     * MSE of a prediction with weight W + ΔW is ‖D − ΔW‖²_F / out + noise).
     */
    record Regression(Tensor x, Tensor y) {}

    static Regression regression(Linear base, double s1, double s2) {
        double[][] p = orthonormal(1, OUT, 2), q = orthonormal(2, IN, 2), xq = orthonormal(3, N, IN);
        double[] u = new double[OUT * 2], v = new double[IN * 2];
        for (int i = 0; i < OUT; i++) {
            u[i * 2] = s1 * p[0][i];
            u[i * 2 + 1] = s2 * p[1][i];
        }
        for (int j = 0; j < IN; j++) {
            v[j * 2] = q[0][j];
            v[j * 2 + 1] = q[1][j];
        }
        Tensor d = Tensor.of(u, OUT, 2).matmul(Tensor.of(v, IN, 2).t());
        double[] xv = new double[N * IN];
        for (int i = 0; i < N; i++) for (int j = 0; j < IN; j++) xv[i * IN + j] = Math.sqrt(N) * xq[j][i];
        Tensor x = Tensor.of(xv, N, IN);
        Tensor y = x.matmul(base.weight().detach().add(d).t()).add(randT(4, 0.01, N, OUT));
        return new Regression(x, y);
    }

    /**
     * Trains a fresh float64 DyLoraLinear (r_max 4, α 4) with AdamW and a controller drawing
     * ranks uniformly from 1..4; returns the MSE of the base (index 0) and at ranks 1..4.
     */
    static double[] trainAndEvaluate(DyLoraLayer.Mode mode, double s1, double s2, int steps, double lr) {
        Torch.manualSeed(18);
        try (TensorScope s = TensorScope.open();
             DyLoraLinear layer = new DyLoraLinear(new Linear(IN, OUT, false), LoraConfig.of(R_MAX, ALPHA))) {
            layer.to(DType.FLOAT64);
            Regression data = regression((Linear) layer.baseLayer(), s1, s2);
            double[] loss = new double[R_MAX + 1];
            loss[0] = Functional.mseLoss(out(layer.baseLayer(), data.x()), data.y()).item();
            DyLoraController ctl = DyLoraController.of(layer, RankSampler.uniform(1, R_MAX), 19).mode(mode);
            Set<Integer> drawn = new TreeSet<>();
            try (AdamW opt = new AdamW(layer.trainableParameters(), AdamW.lr(lr))) {
                for (int step = 0; step < steps; step++) {
                    try (TensorScope st = TensorScope.open()) {
                        drawn.add(ctl.rank());
                        opt.zeroGrad();
                        Functional.mseLoss(layer.forward(data.x()), data.y()).backward();
                        ctl.step(opt);
                    }
                }
            }
            assertEquals(Set.of(1, 2, 3, 4), drawn, "every rank trained");
            layer.eval();
            for (int b = 1; b <= R_MAX; b++) {
                ctl.setRank(b);
                loss[b] = Functional.mseLoss(out(layer, data.x()), data.y()).item();
            }
            return loss;
        }
    }

    /**
     * The converged MSE of frozen-mode DyLoRA on whitened data, in closed form (plain Java).
     * Row b-1 is trained only at rank b, with rows below fixed, so at convergence
     * (α/b)·B_{b-1}A_{b-1} is the best rank-1 approximation (Eckart–Young) of the residual
     * D − ((b-1)/b)·ΔW_{b-1}; D's singular directions stay the only ones in play. Index 0: base.
     */
    static double[] frozenCascade(double s1, double s2) {
        double[] loss = new double[R_MAX + 1];
        loss[0] = (s1 * s1 + s2 * s2) / OUT;
        double c1 = 0, c2 = 0; // ΔW_b = c1·p1q1ᵀ + c2·p2q2ᵀ
        for (int b = 1; b <= R_MAX; b++) {
            double f = (b - 1.0) / b;
            c1 *= f;
            c2 *= f;
            double r1 = s1 - c1, r2 = s2 - c2;
            if (Math.abs(r1) >= Math.abs(r2)) c1 += r1;
            else c2 += r2;
            loss[b] = ((s1 - c1) * (s1 - c1) + (s2 - c2) * (s2 - c2)) / OUT;
        }
        return loss;
    }

    /**
     * The brief's run: ~400 AdamW steps in the paper's (frozen) mode on a rank-2 update with
     * singular values (6, 5); ranks 2..4 end far below the base loss and below rank 1.
     */
    @Test
    void trainingLearnsARankTwoUpdateUsableAtSeveralRanks() {
        double[] loss = trainAndEvaluate(DyLoraLayer.Mode.FROZEN, 6, 5, 400, 3e-2);
        String msg = "frozen, 400 steps: base and ranks 1..4 " + Arrays.toString(loss);
        System.out.println("DyLoRA training " + msg);
        assertEquals(61.0 / OUT, loss[0], 0.01, "base loss = ‖D‖²/out: " + msg);
        for (int b = 2; b <= 4; b++) {
            assertTrue(loss[b] < 0.2 * loss[0], "rank " + b + " far below base: " + msg);
            assertTrue(loss[b] < 0.5 * loss[1], "rank " + b + " below rank 1: " + msg);
        }
        assertTrue(loss[1] < 0.5 * loss[0], "rank 1 learns the top direction: " + msg);
        assertEquals(25.0 / OUT, loss[1], 0.02, "rank 1 = σ2²/out (Eckart–Young): " + msg);
    }

    /** Nested mode, same task and budget: ranks 2..4 far below the base and below rank 1. */
    @Test
    void nestedTrainingLearnsARankTwoUpdate() {
        double[] loss = trainAndEvaluate(DyLoraLayer.Mode.NESTED, 6, 5, 400, 3e-2);
        String msg = "nested, 400 steps: base and ranks 1..4 " + Arrays.toString(loss);
        System.out.println("DyLoRA training " + msg);
        for (int b = 2; b <= 4; b++) {
            assertTrue(loss[b] < 0.2 * loss[0], "rank " + b + " far below base: " + msg);
            assertTrue(loss[b] < 0.5 * loss[1], "rank " + b + " below rank 1: " + msg);
        }
        assertTrue(loss[1] < 0.6 * loss[0], msg);
    }

    /**
     * Trained to convergence (2000 steps), frozen-mode DyLoRA reaches exactly the losses of the
     * closed-form cascade, for singular values (6, 5) and (12, 5). The second case shows the
     * algorithm's limit with the α/b scale: when σ1 > 2σ2 the rank-2 adapter converges to the
     * rank-1 solution (its second row must undo the halving of the first), so rank 2 is no
     * better than rank 1.
     */
    @Test
    void frozenTrainingConvergesToTheClosedFormCascade() {
        for (double[] sv : new double[][] {{6, 5}, {12, 5}}) {
            double[] expected = frozenCascade(sv[0], sv[1]);
            double[] loss = trainAndEvaluate(DyLoraLayer.Mode.FROZEN, sv[0], sv[1], 2000, 3e-2);
            String msg = "σ = " + Arrays.toString(sv) + ": got " + Arrays.toString(loss) + ", closed form "
                    + Arrays.toString(expected);
            System.out.println("DyLoRA converged " + msg);
            for (int b = 0; b <= R_MAX; b++) {
                assertEquals(expected[b], loss[b], 0.03 * expected[b] + 2e-3, "rank " + b + ": " + msg);
            }
        }
        double[] limit = frozenCascade(12, 5);
        assertEquals(limit[1], limit[2], 1e-12, "closed form: rank 2 = rank 1 when σ1 > 2σ2");
    }
}
