package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Conv1d;
import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Conv3d;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The LoRA layers (Linear, Embedding, Conv1d/2d/3d, MergedLinear, fan_in_fan_out) checked against
 * independent truth: the forward formula computed in plain Java, gradients against central finite
 * differences in float64, merge/unmerge equivalence, the grouped-conv delta layout, safe merge,
 * half-precision merge, the disable switch, bad configurations and the init modes.
 */
public class LoraLayerTest {

    // ------------------------------------------------------------------ helpers

    /**
     * A GPT-2 Conv1D-style linear layer whose weight is stored (in, out): {@code y = x·W + b}.
     * The base for fan_in_fan_out adapters.
     */
    public static final class TransposedLinear extends Module {
        public TransposedLinear(long in, long out) {
            registerParameter("weight", Init.uniform_(Tensor.empty(in, out), -0.5, 0.5).requiresGrad_(true));
            registerParameter("bias", Init.uniform_(Tensor.empty(out), -0.5, 0.5).requiresGrad_(true));
        }

        @Override
        public Tensor forward(Tensor x) {
            try (TensorScope s = TensorScope.open()) {
                return x.matmul(parameter("weight")).add(parameter("bias")).keep();
            }
        }
    }

    /** One kind of LoRA layer with an input that fits it. */
    record Case(String name, Supplier<LoraLayer> layer, Function<DType, Tensor> input) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** A tensor of N(0,1)·scale values from a seeded Java generator, in {@code dtype}. */
    static Tensor randT(long seed, double scale, DType dtype, long... shape) {
        Random r = new Random(seed);
        double[] v = new double[Math.toIntExact(Arrays.stream(shape).reduce(1, (a, b) -> a * b))];
        for (int i = 0; i < v.length; i++) v[i] = scale * r.nextGaussian();
        Tensor t = Tensor.of(v, shape);
        if (dtype == DType.FLOAT64) return t;
        Tensor c = t.to(dtype);
        t.close();
        return c;
    }

    /** Overwrites parameter {@code p} with N(0,1)·scale values (under no-grad, keeping its dtype). */
    static void randomize(Tensor p, long seed, double scale) {
        Random r = new Random(seed);
        double[] v = new double[Math.toIntExact(p.numel())];
        for (int i = 0; i < v.length; i++) v[i] = scale * r.nextGaussian();
        set(p, v);
    }

    /** {@code p.copy_(values)} under no-grad. */
    static void set(Tensor p, double[] values) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            p.copy_(Tensor.of(values, p.shape()));
        }
    }

    static Tensor loraA(LoraLayer l) {
        return switch (l) {
            case LoraLinear x -> x.loraA();
            case LoraEmbedding x -> x.loraA();
            case LoraConv x -> x.loraA();
            case MergedLoraLinear x -> x.loraA();
            default -> throw new AssertionError("unknown layer " + l.getClass());
        };
    }

    static Tensor loraB(LoraLayer l) {
        return switch (l) {
            case LoraLinear x -> x.loraB();
            case LoraEmbedding x -> x.loraB();
            case LoraConv x -> x.loraB();
            case MergedLoraLinear x -> x.loraB();
            default -> throw new AssertionError("unknown layer " + l.getClass());
        };
    }

    static Tensor baseWeight(LoraLayer l) {
        return l.baseLayer().parameter("weight");
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    static double maxAbsDiff(double[] a, double[] b) {
        assertEquals(a.length, b.length, "lengths");
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    /** Elementwise |actual − expected| ≤ atol + rtol·|expected|, reporting the worst element. */
    static void assertClose(double[] expected, double[] actual, double rtol, double atol, String what) {
        assertEquals(expected.length, actual.length, what + ": number of elements");
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
            if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
                worst = i;
                worstExcess = excess;
            }
        }
        if (worst >= 0) {
            fail(what + ": element " + worst + " is " + actual[worst] + ", expected " + expected[worst] + " (|diff| "
                    + Math.abs(actual[worst] - expected[worst]) + " > atol " + atol + " + rtol " + rtol + "·|expected|)");
        }
    }

    static double[] values(Tensor t) {
        return t.toDoubleArray();
    }

    // ------------------------------------------------------------------ the layer cases

    static Case linear() {
        return new Case("LoraLinear", () -> new LoraLinear(new Linear(5, 4), LoraConfig.of(3, 5)),
                dt -> randT(11, 1, dt, 3, 5));
    }

    static Case linearFanInFanOut() {
        return new Case("LoraLinear(fan_in_fan_out)",
                () -> new LoraLinear(new TransposedLinear(5, 4), LoraConfig.of(3, 5).withFanInFanOut(true)),
                dt -> randT(12, 1, dt, 2, 3, 5));
    }

    static Case embedding() {
        return new Case("LoraEmbedding", () -> new LoraEmbedding(new Embedding(7, 4), LoraConfig.of(3, 6)),
                dt -> Tensor.of(new long[] {0, 3, 6, 3, 3, 1}, 2, 3));
    }

    static Case embeddingPadding() {
        return new Case("LoraEmbedding(padding_idx=2)", () -> new LoraEmbedding(new Embedding(7, 4, 2), LoraConfig.of(2, 3)),
                dt -> Tensor.of(new long[] {2, 0, 6, 2, 5, 1}, 6));
    }

    static Case conv1d() {
        return new Case("LoraConv(Conv1d groups=2 stride=2)",
                () -> new LoraConv(new Conv1d(4, 6, 3, 2, 1, 1, 2, true), LoraConfig.of(2, 4)),
                dt -> randT(13, 1, dt, 2, 4, 9));
    }

    static Case conv2d() {
        return new Case("LoraConv(Conv2d stride=2 padding=1 dilation=2 groups=2 r=4)",
                () -> new LoraConv(new Conv2d(4, 6, 3, 2, 1, 2, 2, true), LoraConfig.of(4, 6)),
                dt -> randT(14, 1, dt, 2, 4, 9, 9));
    }

    static Case conv3d() {
        return new Case("LoraConv(Conv3d kernel (2,3,2) groups=2)",
                () -> new LoraConv(new Conv3d(2, 4, new long[] {2, 3, 2}, new long[] {1, 2, 1}, new long[] {1, 0, 1},
                        new long[] {1, 1, 2}, 2, true), LoraConfig.of(2, 3)),
                dt -> randT(15, 1, dt, 2, 2, 4, 5, 5));
    }

    static Case merged() {
        return new Case("MergedLoraLinear[true,false,true]",
                () -> new MergedLoraLinear(new Linear(5, 9), LoraConfig.of(2, 3), true, false, true),
                dt -> randT(16, 1, dt, 3, 5));
    }

    static Case mergedFanInFanOut() {
        return new Case("MergedLoraLinear[true,false,true](fan_in_fan_out)",
                () -> new MergedLoraLinear(new TransposedLinear(5, 9), LoraConfig.of(2, 3).withFanInFanOut(true), true, false, true),
                dt -> randT(17, 1, dt, 3, 5));
    }

    static Stream<Case> gradientCases() {
        return Stream.of(linear(), linearFanInFanOut(), embedding(), conv1d(), conv2d(), conv3d(), merged(), mergedFanInFanOut());
    }

    static Stream<Case> mergeCases() {
        return Stream.of(linear(), linearFanInFanOut(), embedding(), embeddingPadding(), conv1d(), conv2d(), conv3d(), merged(),
                mergedFanInFanOut());
    }

    // ------------------------------------------------------------------ 1. forward formula

    /**
     * y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (W stored (in, out) with fan_in_fan_out: x·W), s = α/r or α/√r,
     * recomputed in plain Java doubles from the layer's own parameter values.
     */
    @ParameterizedTest(name = "rslora={0}, fanInFanOut={1}, {2}")
    @MethodSource("forwardFormulaArgs")
    void forwardMatchesTheFormulaComputedInJava(boolean rslora, boolean fanInFanOut, DType dtype) {
        Torch.manualSeed(1);
        int in = 5, out = 3, r = 2;
        double alpha = 6;
        LoraConfig cfg = LoraConfig.of(r, alpha).withRslora(rslora).withFanInFanOut(fanInFanOut);
        Module base = fanInFanOut ? new TransposedLinear(in, out) : new Linear(in, out);
        try (LoraLinear layer = new LoraLinear(base, cfg); TensorScope scope = TensorScope.open()) {
            layer.to(dtype);
            randomize(layer.loraB(), 21, 0.7);
            double s = rslora ? alpha / Math.sqrt(r) : alpha / r;
            Tensor x = randT(22, 1, dtype, 2, 3, in);
            double[] xv = values(x);
            double[] w = values(baseWeight(layer));
            double[] b = values(layer.baseLayer().parameter("bias"));
            double[] a = values(layer.loraA());
            double[] bb = values(layer.loraB());
            assertEquals(r * in, a.length);
            assertEquals(out * r, bb.length);
            int n = xv.length / in;
            double[] expected = new double[n * out];
            for (int row = 0; row < n; row++) {
                double[] down = new double[r];
                for (int k = 0; k < r; k++) {
                    for (int i = 0; i < in; i++) down[k] += xv[row * in + i] * a[k * in + i];
                }
                for (int o = 0; o < out; o++) {
                    double y = b[o];
                    for (int i = 0; i < in; i++) {
                        double wi = fanInFanOut ? w[i * out + o] : w[o * in + i];
                        y += xv[row * in + i] * wi;
                    }
                    double up = 0;
                    for (int k = 0; k < r; k++) up += down[k] * bb[o * r + k];
                    expected[row * out + o] = y + s * up;
                }
            }
            Tensor y = layer.forward(x);
            assertArrayEquals(new long[] {2, 3, out}, y.shape());
            assertEquals(dtype, y.dtype());
            double tol = dtype == DType.FLOAT64 ? 1e-12 : 1e-5;
            assertClose(expected, values(y), tol, tol, "LoRA forward vs x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ");
            assertEquals(s, layer.scaling(), 1e-15, "scaling");
            // The adapter's contribution must be visible (B is non-zero), so a wrong s would fail.
            try (Tensor baseOut = layer.baseLayer().forward(x)) {
                assertTrue(maxAbsDiff(values(baseOut), values(y)) > 1e-2, "adapter has an effect");
            }
        }
    }

    static Stream<org.junit.jupiter.params.provider.Arguments> forwardFormulaArgs() {
        return Stream.of(false, true).flatMap(rs -> Stream.of(false, true).flatMap(fif -> Stream.of(DType.FLOAT32, DType.FLOAT64)
                .map(dt -> org.junit.jupiter.params.provider.Arguments.of(rs, fif, dt))));
    }

    // ------------------------------------------------------------------ 2. gradients

    private static double lossValue(LoraLayer layer, Tensor x) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            return layer.forward(x).pow(2).sum().item();
        }
    }

    /**
     * d(Σ y²)/dA and d(Σ y²)/dB from autograd against central finite differences in float64
     * (ε = 1e-6; the loss is exactly quadratic in each single parameter, so the difference quotient
     * is exact up to rounding). The frozen base weight gets no gradient.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("gradientCases")
    void gradientsOfAAndBMatchFiniteDifferences(Case c) {
        Torch.manualSeed(2);
        try (LoraLayer layer = c.layer().get(); TensorScope scope = TensorScope.open()) {
            layer.to(DType.FLOAT64);
            assertEquals(DType.FLOAT64, loraA(layer).dtype());
            assertEquals(DType.FLOAT64, baseWeight(layer).dtype());
            randomize(loraA(layer), 31, 0.5);
            randomize(loraB(layer), 32, 0.5);
            Tensor x = c.input().apply(DType.FLOAT64);
            Tensor loss = layer.forward(x).pow(2).sum();
            loss.backward();
            assertFalse(baseWeight(layer).requiresGrad(), "base weight is frozen");
            assertNull(baseWeight(layer).grad(), "the frozen base weight must get no gradient");
            for (String which : List.of("A", "B")) {
                Tensor p = which.equals("A") ? loraA(layer) : loraB(layer);
                assertTrue(p.requiresGrad(), which + " is trainable");
                Tensor g = p.grad();
                assertNotNull(g, which + " has a gradient");
                assertArrayEquals(p.shape(), g.shape());
                double[] analytic = values(g);
                double scale = maxAbs(analytic);
                assertTrue(scale > 1e-3, which + "'s gradient is non-trivial (max " + scale + ")");
                double[] v = values(p);
                double[] fd = new double[v.length];
                double eps = 1e-6;
                for (int i = 0; i < v.length; i++) {
                    double orig = v[i];
                    v[i] = orig + eps;
                    set(p, v);
                    double lp = lossValue(layer, x);
                    v[i] = orig - eps;
                    set(p, v);
                    double lm = lossValue(layer, x);
                    v[i] = orig;
                    set(p, v);
                    fd[i] = (lp - lm) / (2 * eps);
                }
                assertClose(fd, analytic, 1e-6, 1e-8 * Math.max(1, scale), c.name() + ": d loss / d " + which);
            }
        }
    }

    // ------------------------------------------------------------------ 3. merge equivalence

    /**
     * With non-zero B, in eval mode (dropout 0.2 configured, so eval must switch it off): output
     * after merge == output before (float32, 1e-5 relative + 1e-5·max|y| absolute); merge twice
     * returns false and leaves the weight bit-identical; unmerge restores the base weight within
     * 1e-6 max-abs (float32) and the output within the same tolerance as above.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("mergeCases")
    void mergeGivesTheSameOutputAndUnmergeRestores(Case c) {
        Torch.manualSeed(3);
        try (LoraLayer layer0 = c.layer().get(); TensorScope scope = TensorScope.open()) {
            LoraConfig cfg = layer0.config().withDropout(0.2);
            // Rebuild with dropout on (the case's base is reused through unload()).
            Module base = layer0.unload();
            try (LoraLayer layer = rebuild(layer0, base, cfg)) {
                layer.eval();
                randomize(loraA(layer), 41, 0.5);
                randomize(loraB(layer), 42, 0.5);
                Tensor x = c.input().apply(DType.FLOAT32);
                double[] w0 = values(baseWeight(layer));
                double[] before = values(layer.forward(x));
                double[] baseOnly = values(layer.baseLayer().forward(x));
                double ref = Math.max(1, maxAbs(before));
                assertTrue(maxAbsDiff(before, baseOnly) > 1e-2, "the adapter changes the output");
                assertArrayEquals(before, values(layer.forward(x)), "eval mode: forward is deterministic (dropout off)");

                assertFalse(layer.isMerged());
                assertFalse(layer.unmerge(), "unmerge of an unmerged layer is a no-op");
                assertArrayEquals(w0, values(baseWeight(layer)));

                assertTrue(layer.merge(), "first merge merges");
                assertTrue(layer.isMerged());
                double[] w1 = values(baseWeight(layer));
                assertTrue(maxAbsDiff(w0, w1) > 1e-3, "merge changed the base weight");
                double[] delta = values(layer.deltaWeight());
                double[] expectedW1 = new double[w0.length];
                for (int i = 0; i < w0.length; i++) expectedW1[i] = w0[i] + delta[i];
                assertClose(expectedW1, w1, 1e-6, 1e-6, c.name() + ": merged weight = W + deltaWeight()");
                assertClose(before, values(layer.forward(x)), 1e-5, 1e-5 * ref, c.name() + ": merged output vs unmerged output");
                assertClose(before, values(layer.baseLayer().forward(x)), 1e-5, 1e-5 * ref,
                        c.name() + ": merged base layer alone vs unmerged LoRA output");

                assertFalse(layer.merge(), "second merge is a no-op");
                assertFalse(layer.merge(true), "second (safe) merge is a no-op");
                assertArrayEquals(w1, values(baseWeight(layer)), "merging twice must not add the delta again");

                assertTrue(layer.unmerge());
                assertFalse(layer.isMerged());
                double[] w2 = values(baseWeight(layer));
                assertTrue(maxAbsDiff(w0, w2) <= 1e-6, c.name() + ": unmerge restores W within 1e-6, max diff " + maxAbsDiff(w0, w2));
                assertClose(before, values(layer.forward(x)), 1e-5, 1e-5 * ref, c.name() + ": output after unmerge");
            }
        }
    }

    /** A fresh layer of the same kind as {@code like} around {@code base} with {@code cfg}. */
    private static LoraLayer rebuild(LoraLayer like, Module base, LoraConfig cfg) {
        return switch (like) {
            case LoraLinear l -> new LoraLinear(base, cfg);
            case LoraEmbedding l -> new LoraEmbedding((Embedding) base, cfg);
            case LoraConv l -> new LoraConv((Conv) base, cfg);
            case MergedLoraLinear l -> new MergedLoraLinear(base, cfg, l.enableLora());
            default -> throw new AssertionError();
        };
    }

    /**
     * The same merge equivalence for a layer converted to float64: merged output == unmerged
     * output within 1e-12 (relative to max|y|), merged W == W + s·B·A computed in Java within
     * 1e-13, and unmerge restores W within 1e-13. A ΔW rounded through float32 (relative error
     * ~6e-8) cannot pass this.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("mergeCases")
    void mergeInFloat64IsExactToDoublePrecision(Case c) {
        Torch.manualSeed(8);
        try (LoraLayer layer = c.layer().get(); TensorScope scope = TensorScope.open()) {
            layer.to(DType.FLOAT64).eval();
            randomize(loraA(layer), 43, 0.5);
            randomize(loraB(layer), 44, 0.5);
            Tensor x = c.input().apply(DType.FLOAT64);
            double[] w0 = values(baseWeight(layer));
            double[] before = values(layer.forward(x));
            double ref = Math.max(1, maxAbs(before));
            Tensor delta = layer.deltaWeight();
            assertEquals(DType.FLOAT64, delta.dtype(), "ΔW comes in the weight's dtype");
            assertTrue(layer.merge());
            double[] w1 = values(baseWeight(layer));
            double[] d = new double[w0.length];
            for (int i = 0; i < d.length; i++) d[i] = w1[i] - w0[i];
            assertTrue(maxAbs(d) > 1e-3, "merge changed W");
            assertClose(before, values(layer.forward(x)), 1e-12, 1e-12 * ref, c.name() + ": float64 merged vs unmerged output");
            assertTrue(layer.unmerge());
            assertTrue(maxAbsDiff(w0, values(baseWeight(layer))) <= 1e-13, c.name() + ": float64 unmerge restores W, max diff "
                    + maxAbsDiff(w0, values(baseWeight(layer))));
        }
    }

    // ------------------------------------------------------------------ 4. conv delta layout

    /**
     * ΔW of a grouped conv, recomputed in Java from A (r, in/g, *k) and B (out, r/g, 1…):
     * ΔW[o, c, k] = s·Σ_j B[o, j]·A[g(o)·r/g + j, c, k]. Then conv(x, W + ΔW) must equal
     * base(x) + s·B(A(x)), the layer's unmerged forward. Run in float64, but with tolerances (1e-6)
     * that allow the library's documented float32 computation of ΔW: this test is about the layout;
     * the precision of float64 merges is {@link #mergeInFloat64IsExactToDoublePrecision}'s business.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("convCases")
    void convDeltaIsTheCompositeConvolutionsWeight(Case c) {
        Torch.manualSeed(4);
        try (LoraConv layer = (LoraConv) c.layer().get(); TensorScope scope = TensorScope.open()) {
            layer.to(DType.FLOAT64);
            randomize(layer.loraA(), 51, 0.5);
            randomize(layer.loraB(), 52, 0.5);
            Conv base = (Conv) layer.baseLayer();
            long g = base.groups();
            int r = layer.r();
            int out = (int) base.outChannels();
            int rg = (int) (r / g);
            int outG = (int) (out / g);
            long[] wShape = base.weight().shape();
            int perOut = Math.toIntExact(base.weight().numel() / out); // (in/g)·prod(kernel)
            double[] a = values(layer.loraA());
            double[] b = values(layer.loraB());
            assertEquals((long) r * perOut, a.length, "A is (r, in/g, *k)");
            assertEquals((long) out * rg, b.length, "B is (out, r/g, 1, ...)");
            double s = layer.scaling();
            double[] expected = new double[out * perOut];
            for (int o = 0; o < out; o++) {
                int grp = o / outG;
                for (int q = 0; q < perOut; q++) {
                    double sum = 0;
                    for (int j = 0; j < rg; j++) sum += b[o * rg + j] * a[(grp * rg + j) * perOut + q];
                    expected[o * perOut + q] = s * sum;
                }
            }
            Tensor delta = layer.deltaWeight();
            assertArrayEquals(wShape, delta.shape(), "ΔW has the base weight's shape");
            assertClose(expected, values(delta), 1e-6, 1e-7, c.name() + ": ΔW vs Java");

            Tensor x = c.input().apply(DType.FLOAT64);
            Tensor composite = Functional.conv(base.spatialDims(), x, base.weight().add(delta), base.bias(), base.stride(),
                    base.padding(), base.dilation(), base.groups());
            Tensor y = layer.forward(x);
            assertArrayEquals(composite.shape(), y.shape());
            assertClose(values(composite), values(y), 1e-6, 1e-6 * Math.max(1, maxAbs(values(y))),
                    c.name() + ": conv(x, W+ΔW) vs base(x) + lora(x)");
        }
    }

    static Stream<Case> convCases() {
        return Stream.of(conv1d(), conv2d(), conv3d());
    }

    // ------------------------------------------------------------------ 5. safe merge

    /** NaN in B: merge(true) throws and leaves W bit-identical and the layer unmerged; merge(false) makes W non-finite. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("safeMergeCases")
    void safeMergeRefusesANonFiniteWeight(Case c) {
        Torch.manualSeed(5);
        try (LoraLayer layer = c.layer().get(); TensorScope scope = TensorScope.open()) {
            randomize(loraB(layer), 61, 0.5);
            double[] bv = values(loraB(layer));
            bv[bv.length / 2] = Double.NaN;
            set(loraB(layer), bv);
            double[] w0 = values(baseWeight(layer));
            var e = assertThrows(IllegalStateException.class, () -> layer.merge(true));
            assertNotNull(e.getMessage());
            assertFalse(layer.isMerged(), "a refused merge leaves the layer unmerged");
            assertArrayEquals(w0, values(baseWeight(layer)), "a refused safe merge leaves W untouched");
            assertTrue(baseWeight(layer).allFinite());
            assertTrue(layer.merge(false), "an unsafe merge goes through");
            assertFalse(baseWeight(layer).allFinite(), "and makes W non-finite");
        }
    }

    static Stream<Case> safeMergeCases() {
        return Stream.of(linear(), linearFanInFanOut(), embedding(), conv2d(), merged());
    }

    // ------------------------------------------------------------------ 6. half precision

    /**
     * A LoraLinear converted to float16/bfloat16 as a whole: merge must compute W + ΔW in float32
     * and round once, so W_merged == (W.to(f32) + s·B32·A32).to(half) exactly (and within half an
     * ulp of the exact sum computed in Java); unmerge gives W back within the two roundings.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void halfPrecisionMergeIsComputedInFloat32(DType half) {
        Torch.manualSeed(6);
        try (LoraLinear layer = new LoraLinear(new Linear(16, 12), LoraConfig.of(4, 6)); TensorScope scope = TensorScope.open()) {
            layer.to(half);
            assertEquals(half, baseWeight(layer).dtype());
            assertEquals(half, layer.loraA().dtype());
            assertEquals(half, layer.loraB().dtype());
            randomize(layer.loraA(), 71, 0.4);
            randomize(layer.loraB(), 72, 0.4);
            double s = layer.scaling();
            Tensor w0 = baseWeight(layer).clone();
            Tensor delta32 = layer.loraB().to(DType.FLOAT32).matmul(layer.loraA().to(DType.FLOAT32)).mul(s);
            Tensor expected = w0.to(DType.FLOAT32).add(delta32).to(half);
            // The naive half-precision sum differs somewhere (otherwise the check below could not fail).
            Tensor naive = w0.add(delta32.to(half));
            assertFalse(naive.equal(expected), "test setup: half-precision add differs from the f32 add");

            assertTrue(layer.merge());
            Tensor merged = baseWeight(layer);
            assertEquals(half, merged.dtype(), "the weight keeps its dtype");
            assertTrue(merged.equal(expected), "merged weight == (W.f32 + ΔW.f32).to(" + half + ") exactly; max diff "
                    + maxAbsDiff(values(merged), values(expected)));

            // Against the exact sum in Java: within half a unit in the last place (unit roundoff u).
            double u = half == DType.FLOAT16 ? Math.scalb(1.0, -11) : Math.scalb(1.0, -8);
            double[] wv = values(w0);
            double[] av = values(layer.loraA());
            double[] bv = values(layer.loraB());
            double[] mv = values(merged);
            int in = 16, out = 12, r = 4;
            double[] exact = new double[out * in];
            for (int o = 0; o < out; o++) {
                for (int i = 0; i < in; i++) {
                    double d = 0;
                    for (int k = 0; k < r; k++) d += bv[o * r + k] * av[k * in + i];
                    exact[o * in + i] = wv[o * in + i] + s * d;
                }
            }
            assertClose(exact, mv, u * 1.001, 1e-7, "merged " + half + " weight vs the exact W + ΔW");

            assertTrue(layer.unmerge());
            double[] back = values(baseWeight(layer));
            for (int i = 0; i < back.length; i++) {
                double tol = 1.001 * u * (Math.abs(exact[i]) + Math.abs(wv[i])) + 1e-7;
                assertTrue(Math.abs(back[i] - wv[i]) <= tol, "unmerge restores W within " + half + " rounding at " + i + ": "
                        + back[i] + " vs " + wv[i] + " (tol " + tol + ")");
            }
        }
    }

    // ------------------------------------------------------------------ 7. disable

    /** setAdapterEnabled(false) gives exactly the base layer's output (and F.linear's for Linear); enabling brings the adapter back. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("mergeCases")
    void disabledAdapterGivesExactlyTheBaseOutput(Case c) {
        Torch.manualSeed(7);
        try (LoraLayer layer = c.layer().get(); TensorScope scope = TensorScope.open()) {
            randomize(loraA(layer), 81, 0.5);
            randomize(loraB(layer), 82, 0.5);
            Tensor x = c.input().apply(DType.FLOAT32);
            Tensor enabled = layer.forward(x);
            Tensor base = layer.baseLayer().forward(x);
            assertFalse(enabled.allclose(base, 1e-3, 1e-3), "the adapter changes the output");
            assertTrue(layer.isAdapterEnabled());
            layer.setAdapterEnabled(false);
            assertFalse(layer.isAdapterEnabled());
            Tensor disabled = layer.forward(x);
            assertTrue(disabled.equal(base), c.name() + ": disabled output == base output exactly");
            if (layer.baseLayer() instanceof Linear lin) {
                assertTrue(disabled.equal(Functional.linear(x, lin.weight(), lin.bias())), "== F.linear(x, W, b)");
            }
            layer.setAdapterEnabled(true);
            assertTrue(layer.forward(x).equal(enabled), "re-enabling restores the adapted output");
        }
    }

    // ------------------------------------------------------------------ 8. bad configurations

    @Test
    void badConfigurationsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.of(0));
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.of(-2));
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.of(4, -1.0));
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.of(4).withAlpha(Double.NaN));

        try (Linear lin = new Linear(4, 10)) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> new MergedLoraLinear(lin, LoraConfig.of(2), true, false, true));
            assertTrue(e.getMessage().contains("divide"), e.getMessage());
        }
        try (Conv2d conv = new Conv2d(8, 8, 3, 1, 1, 1, 4, true)) {
            var e = assertThrows(IllegalArgumentException.class, () -> new LoraConv(conv, LoraConfig.of(2)));
            assertTrue(e.getMessage().contains("groups"), e.getMessage());
        }
        try (TensorScope scope = TensorScope.open()) {
            Tensor x = Tensor.randn(2, 4);
            for (Supplier<LoraLayer> make : List.<Supplier<LoraLayer>>of(
                    () -> new LoraLinear(new Linear(4, 3), LoraConfig.of(2)),
                    () -> new MergedLoraLinear(new Linear(4, 6), LoraConfig.of(2), true, true))) {
                LoraLayer layer = make.get();
                layer.close();
                assertTrue(layer.isClosed());
                assertThrows(IllegalStateException.class, () -> layer.merge());
                assertThrows(IllegalStateException.class, () -> layer.merge(true));
                assertThrows(IllegalStateException.class, () -> layer.unmerge());
                assertThrows(IllegalStateException.class, () -> layer.forward(x));
            }
            LoraLayer conv = new LoraConv(new Conv2d(2, 2, 3), LoraConfig.of(2));
            conv.close();
            assertThrows(IllegalStateException.class, () -> conv.merge());
            assertThrows(IllegalStateException.class, () -> conv.forward(Tensor.randn(1, 2, 5, 5)));
            LoraLayer emb = new LoraEmbedding(new Embedding(5, 3), LoraConfig.of(2));
            emb.close();
            assertThrows(IllegalStateException.class, () -> emb.merge());
            assertThrows(IllegalStateException.class, () -> emb.forward(Tensor.of(new long[] {1, 2}, 2)));
        }
    }

    // ------------------------------------------------------------------ 9. init modes

    private static double mean(double[] v) {
        double s = 0;
        for (double d : v) s += d;
        return s / v.length;
    }

    private static double std(double[] v) {
        double m = mean(v), s = 0;
        for (double d : v) s += (d - m) * (d - m);
        return Math.sqrt(s / (v.length - 1));
    }

    /** DEFAULT: A kaiming-uniform(a=√5) = U(±1/√fan_in), B zeros, so ΔW = 0 and forward = base. */
    @Test
    void defaultInitIsKaimingUniformAAndZeroB() {
        Torch.manualSeed(9);
        try (TensorScope scope = TensorScope.open();
             LoraLinear lin = new LoraLinear(new Linear(64, 32), LoraConfig.of(8, 16));
             LoraConv conv = new LoraConv(new Conv2d(8, 8, 3, 1, 1, 1, 2, true), LoraConfig.of(4, 8));
             MergedLoraLinear mrg = new MergedLoraLinear(new Linear(100, 30), LoraConfig.of(8), true, false, true)) {
            checkKaiming("LoraLinear", values(lin.loraA()), 64);
            checkKaiming("LoraConv", values(conv.loraA()), 4 * 9); // fan_in = in/groups · k·k
            checkKaiming("MergedLoraLinear", values(mrg.loraA()), 100);
            assertArrayEquals(new long[] {16, 100}, mrg.loraA().shape(), "A is (r·enabled, in)");
            assertArrayEquals(new long[] {20, 8}, mrg.loraB().shape(), "B is (out/parts·enabled, r)");
            for (LoraLayer l : List.<LoraLayer>of(lin, conv, mrg)) {
                assertEquals(0.0, maxAbs(values(loraB(l))), l.getClass().getSimpleName() + ": B starts at zero");
                assertEquals(0.0, maxAbs(values(l.deltaWeight())), l.getClass().getSimpleName() + ": initial ΔW is zero");
            }
            Tensor x = Tensor.randn(3, 64);
            // the same bits: the plain layer and the frozen base take their product from the same
            // small-batch kernel, and B = 0 adds exact zeros
            assertTrue(lin.forward(x).equal(lin.baseLayer().forward(x)), "initial forward == base forward, bit for bit");
        }
    }

    private static void checkKaiming(String what, double[] a, long fanIn) {
        double bound = 1 / Math.sqrt(fanIn);
        double m = maxAbs(a);
        assertTrue(m <= bound, what + ": |A| ≤ 1/√fan_in = " + bound + ", got " + m);
        assertTrue(m > 0.9 * bound, what + ": A spans the range (max |A| " + m + ", bound " + bound + ")");
        // U(-b, b) has std b/√3.
        assertEquals(bound / Math.sqrt(3), std(a), 0.15 * bound / Math.sqrt(3), what + ": std of U(±b)");
    }

    /** GAUSSIAN: A ~ N(0, std 1/r) (PEFT's normal_(std=1/r)); NORMAL: A ~ N(0, 1); B zeros in both. */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = LoraConfig.Init.class, names = {"GAUSSIAN", "NORMAL"})
    void gaussianAndNormalInit(LoraConfig.Init init) {
        Torch.manualSeed(10);
        int r = 8;
        try (TensorScope scope = TensorScope.open();
             LoraLinear l = new LoraLinear(new Linear(2048, 16), LoraConfig.of(r).withInit(init))) {
            double[] a = values(l.loraA());
            assertEquals(r * 2048, a.length);
            double expectedStd = init == LoraConfig.Init.GAUSSIAN ? 1.0 / r : 1.0;
            assertEquals(expectedStd, std(a), 0.03 * expectedStd, init + ": std of A");
            assertEquals(0.0, mean(a), 5 * expectedStd / Math.sqrt(a.length), init + ": mean of A");
            assertEquals(0.0, maxAbs(values(l.loraB())), init + ": B zeros");
        }
    }

    /** LoraEmbedding default (PEFT): A zeros, B ~ N(0, 1) — the other way round from Linear. */
    @Test
    void embeddingDefaultInitIsZeroAAndNormalB() {
        Torch.manualSeed(11);
        try (TensorScope scope = TensorScope.open();
             LoraEmbedding l = new LoraEmbedding(new Embedding(100, 512), LoraConfig.of(16))) {
            assertArrayEquals(new long[] {16, 100}, l.loraA().shape(), "A is (r, num_embeddings)");
            assertArrayEquals(new long[] {512, 16}, l.loraB().shape(), "B is (dim, r)");
            assertEquals(0.0, maxAbs(values(l.loraA())), "A zeros");
            double[] b = values(l.loraB());
            assertEquals(1.0, std(b), 0.03, "std of B");
            assertEquals(0.0, mean(b), 5 / Math.sqrt(b.length), "mean of B");
            assertEquals(0.0, maxAbs(values(l.deltaWeight())), "initial ΔW is zero");
        }
    }
}
