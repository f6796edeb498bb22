package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.NoGradScope;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.internal.LoraOps;
import dev.lora4j.nn.Linear;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The fused LoRA kernels at zero sizes PyTorch accepts (no rows, no input or output features,
 * rank 0): {@code x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ} and its gradients against a float64 plain-Java
 * reference, through every path of the shim's {@code lt_lora_linear} (its own autograd node for a
 * frozen base, the composed ops for a trained one, no graph at all) and {@code lt_lora_add_delta};
 * a LoraLinear layer and a mixed batch with no rows; a bank holding a rank-0 adapter.
 */
class ZeroSizeLoraTest {

    private static final double SCALE = 0.75;

    /** Which operands need a gradient. */
    private enum Path { FROZEN_BASE, TRAINED_BASE, NO_GRAD, ADD_DELTA }

    private static void check(int rows, int in, int out, int r, boolean bias, boolean threeD, Path path, long seed) {
        String what = rows + "×" + in + " → " + out + " r=" + r + (bias ? " bias" : "") + (threeD ? " 3-d" : "") + " " + path;
        Random rnd = new Random(seed);
        float[] xs = random(rnd, rows * in), ws = random(rnd, out * in), bs = random(rnd, out), as = random(rnd, r * in),
                bms = random(rnd, out * r), cs = random(rnd, rows * out);
        try (TensorScope s = TensorScope.open()) {
            long[] xShape = threeD ? new long[] {2, rows / 2, in} : new long[] {rows, in};
            long[] yShape = threeD ? new long[] {2, rows / 2, out} : new long[] {rows, out};
            boolean grads = path != Path.NO_GRAD && path != Path.ADD_DELTA;
            Tensor x = Tensor.of(xs, xShape).requiresGrad_(grads);
            Tensor w = Tensor.of(ws, out, in).requiresGrad_(path == Path.TRAINED_BASE);
            Tensor b = bias ? Tensor.of(bs, out).requiresGrad_(grads) : null;
            Tensor a = Tensor.of(as, r, in).requiresGrad_(grads);
            Tensor bm = Tensor.of(bms, out, r).requiresGrad_(grads);
            Tensor c = Tensor.of(cs, yShape);
            Tensor y;
            if (path == Path.ADD_DELTA) {
                Tensor base = bias ? Tensor.of(bs, out).add(Tensor.zeros(yShape)) : Tensor.zeros(yShape);
                base = base.add(x.matmul(w.t())); // x·Wᵀ composed (ATen's matmul with a transposed view)
                y = LoraOps.addDelta(base, x, a, bm, SCALE);
            } else if (path == Path.NO_GRAD) {
                try (NoGradScope ng = Torch.noGrad()) {
                    y = LoraOps.linear(x, w, b, a, bm, SCALE);
                }
            } else {
                y = LoraOps.linear(x, w, b, a, bm, SCALE);
            }
            assertArrayEquals(yShape, y.shape(), what + ": output shape");
            double[] xa = new double[rows * r], cb = new double[rows * r]; // x·Aᵀ and c·B
            for (int m = 0; m < rows; m++)
                for (int j = 0; j < r; j++) {
                    for (int k = 0; k < in; k++) xa[m * r + j] += (double) xs[m * in + k] * as[j * in + k];
                    for (int o = 0; o < out; o++) cb[m * r + j] += (double) cs[m * out + o] * bms[o * r + j];
                }
            double[] ey = new double[rows * out];
            for (int m = 0; m < rows; m++)
                for (int o = 0; o < out; o++) {
                    double v = bias ? bs[o] : 0;
                    for (int k = 0; k < in; k++) v += (double) xs[m * in + k] * ws[o * in + k];
                    for (int j = 0; j < r; j++) v += SCALE * xa[m * r + j] * bms[o * r + j];
                    ey[m * out + o] = v;
                }
            assertClose(ey, y.toFloatArray(), what + ": y");
            if (!grads) return;
            y.mul(c).sum().backward();
            double[] dx = new double[rows * in], da = new double[r * in], db = new double[out * r], dbias = new double[out],
                    dw = new double[out * in];
            for (int m = 0; m < rows; m++) {
                for (int k = 0; k < in; k++) {
                    for (int o = 0; o < out; o++) dx[m * in + k] += (double) cs[m * out + o] * ws[o * in + k];
                    for (int j = 0; j < r; j++) dx[m * in + k] += SCALE * cb[m * r + j] * as[j * in + k];
                }
                for (int j = 0; j < r; j++)
                    for (int k = 0; k < in; k++) da[j * in + k] += SCALE * cb[m * r + j] * xs[m * in + k];
                for (int o = 0; o < out; o++) {
                    for (int j = 0; j < r; j++) db[o * r + j] += SCALE * cs[m * out + o] * xa[m * r + j];
                    dbias[o] += cs[m * out + o];
                    for (int k = 0; k < in; k++) dw[o * in + k] += (double) cs[m * out + o] * xs[m * in + k];
                }
            }
            assertGrad(dx, x, xShape, what + ": dx");
            assertGrad(da, a, new long[] {r, in}, what + ": dA");
            assertGrad(db, bm, new long[] {out, r}, what + ": dB");
            if (bias) assertGrad(dbias, b, new long[] {out}, what + ": dbias");
            if (path == Path.TRAINED_BASE) assertGrad(dw, w, new long[] {out, in}, what + ": dW");
            else assertNull(w.grad(), what + ": a frozen base gets no gradient");
        }
    }

    /** A leaf's gradient against the reference; an empty leaf may get none (autograd skips it). */
    private static void assertGrad(double[] expected, Tensor leaf, long[] shape, String what) {
        Tensor g = leaf.grad();
        if (g == null && expected.length == 0) return;
        assertNotNull(g, what + " missing");
        assertArrayEquals(shape, g.shape(), what + " shape");
        assertClose(expected, g.toFloatArray(), what);
    }

    private static void assertClose(double[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + " size");
        for (int i = 0; i < expected.length; i++) {
            double tol = 1e-5 * (1 + Math.abs(expected[i])) * 10;
            if (!(Math.abs(expected[i] - actual[i]) <= tol))
                fail(what + "[" + i + "] = " + actual[i] + ", expected " + expected[i]);
        }
    }

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test
    void fusedLoraLinearAtZeroSizes() {
        int[][] sizes = { // rows, in, out, r
            {0, 3, 4, 2}, {2, 0, 4, 2}, {2, 3, 0, 2}, {2, 3, 4, 0}, {0, 0, 0, 0}, {4, 0, 4, 0}, {0, 3, 0, 2},
            {18, 0, 4, 2}, {18, 3, 0, 2}, {18, 3, 4, 0}, {2, 3, 4, 2}};
        long seed = 1;
        for (int[] z : sizes)
            for (Path p : Path.values())
                for (boolean bias : new boolean[] {false, true})
                    for (boolean threeD : new boolean[] {false, true}) check(z[0], z[1], z[2], z[3], bias, threeD, p, seed++);
    }

    /** A 1-d input (in) with no input features: y is the bias; dA is (r, 0), dB zeros, dbias ones. */
    @Test
    void fusedLoraLinearOnAnEmptyVector() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.zeros(0).requiresGrad_(true);
            Tensor w = Tensor.zeros(4, 0);
            Tensor b = Tensor.randn(4).requiresGrad_(true);
            Tensor a = Tensor.zeros(2, 0).requiresGrad_(true);
            Tensor bm = Tensor.randn(4, 2).requiresGrad_(true);
            Tensor y = LoraOps.linear(x, w, b, a, bm, SCALE);
            assertTrue(y.equal(b));
            y.sum().backward();
            assertArrayEquals(new long[] {0}, x.grad().shape());
            assertArrayEquals(new long[] {2, 0}, a.grad().shape());
            assertTrue(bm.grad().equal(Tensor.zeros(4, 2)));
            assertTrue(b.grad().equal(Tensor.ones(4)));
        }
    }

    /** A LoraLinear layer (trained adapter, frozen base) and a mixed batch on a batch with no rows. */
    @Test
    void loraLinearLayerOnABatchWithNoRows() {
        Torch.manualSeed(3);
        try (LoraLinear l = new LoraLinear(new Linear(3, 4), LoraConfig.of(2, 4)); TensorScope s = TensorScope.open()) {
            l.baseLayer().parameter("weight").requiresGrad_(false);
            NamedAdaptersTest.randomize(l, "default");
            for (long[] shape : new long[][] {{0, 3}, {2, 0, 3}, {0, 5, 3}}) {
                String what = Arrays.toString(shape);
                Tensor x = Tensor.zeros(shape).requiresGrad_(true);
                Tensor y = l.forward(x);
                long[] yShape = shape.clone();
                yShape[yShape.length - 1] = 4;
                assertArrayEquals(yShape, y.shape(), what);
                y.sum().backward();
                assertArrayEquals(shape, x.grad().shape(), what + ": dx");
                assertTrue(l.loraA("default").grad().equal(Tensor.zeros(2, 3)), what + ": dA");
                assertTrue(l.loraB("default").grad().equal(Tensor.zeros(4, 2)), what + ": dB");
                l.loraA("default").clearGrad();
                l.loraB("default").clearGrad();
                l.eval();
                try (NoGradScope ng = Torch.noGrad()) {
                    assertArrayEquals(yShape, l.forward(x).shape(), what + " in eval");
                }
                l.train();
            }
        }
    }

    @Test
    void mixedBatchWithNoRows() {
        Torch.manualSeed(4);
        try (LoraLinear l = new LoraLinear(new Linear(3, 4), "a", LoraConfig.of(2, 4)); TensorScope s = TensorScope.open()) {
            l.addAdapter("b", LoraConfig.of(1, 2));
            NamedAdaptersTest.randomize(l, "a");
            NamedAdaptersTest.randomize(l, "b");
            l.eval();
            try (NoGradScope ng = Torch.noGrad()) {
                for (long[] shape : new long[][] {{0, 3}, {0, 5, 3}}) {
                    Tensor y = Lora.forward(l, Tensor.zeros(shape), new String[0]);
                    long[] yShape = shape.clone();
                    yShape[yShape.length - 1] = 4;
                    assertArrayEquals(yShape, y.shape(), Arrays.toString(shape));
                }
                // Rows of a sequence of length 0: (2, 0, 3).
                Tensor y = Lora.forward(l, Tensor.zeros(2, 0, 3), new String[] {"a", "b"});
                assertArrayEquals(new long[] {2, 0, 4}, y.shape());
            }
        }
    }

    /** A bank with a rank-0 adapter (A (0, in), B (out, 0)): its rows get zeros, beside a rank-2 adapter's. */
    @Test
    void bankWithARankZeroAdapter() {
        Torch.manualSeed(5);
        try (AdapterBank bank = new AdapterBank(3, 4); TensorScope s = TensorScope.open()) {
            bank.put("zero", Tensor.zeros(0, 3), Tensor.zeros(4, 0), 2.0);
            Tensor x = Tensor.randn(3, 3);
            assertTrue(bank.delta(x, "zero", AdapterBank.BASE, "zero").equal(Tensor.zeros(3, 4)));
            Tensor a = Tensor.randn(2, 3), b = Tensor.randn(4, 2);
            bank.put("two", a, b, 0.5);
            Tensor d = bank.delta(x, "zero", "two", AdapterBank.BASE);
            Tensor expected = x.narrow(0, 1, 1).matmul(a.t()).matmul(b.t()).mul(0.5);
            assertTrue(d.narrow(0, 0, 1).equal(Tensor.zeros(1, 4)));
            assertTrue(d.narrow(0, 1, 1).allclose(expected, 1e-5, 1e-6));
            assertTrue(d.narrow(0, 2, 1).equal(Tensor.zeros(1, 4)));
            assertArrayEquals(new long[] {0, 4}, bank.delta(Tensor.zeros(0, 3)).shape());
        }
    }
}
