package dev.lora4j.nn;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.NoGradScope;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * Zero-size operands that PyTorch accepts (no rows, no input features, no output features, an
 * empty key sequence, an empty head): the shim's own kernels (linear with its autograd node,
 * matmul without a graph, LibTorch 1.13's attention loop) give PyTorch's result, not an internal
 * "cannot reshape tensor of 0 elements" error. Truth: a float64 plain-Java product
 * ({@link SmallBatchLinearTest#check}), closed forms, and attention composed of plain tensor ops
 * with their own autograd.
 */
class ZeroSizeTest {

    @Test
    void linearForwardAndBackwardAtZeroSizes() {
        long seed = 100;
        int[][] shapes = {{0, 3, 4}, {2, 0, 4}, {2, 3, 0}, {0, 0, 0}, {4, 0, 0}, {0, 5, 0}, {18, 0, 4}, {18, 3, 0}};
        for (int[] s : shapes) {
            for (boolean bias : new boolean[] {false, true}) {
                SmallBatchLinearTest.check(s[0], s[1], s[2], bias, false, seed++);
                SmallBatchLinearTest.check(s[0], s[1], s[2], bias, true, seed++); // (2, rows/2, in)
            }
        }
    }

    /** The reported case: x (2, 3), w (0, 3), both trainable; dx is zeros (nothing flows back), dw is (0, 3). */
    @Test
    void linearWithNoOutputFeaturesBacksUpZeros() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(2, 3).requiresGrad_(true);
            Tensor w = Tensor.randn(0, 3).requiresGrad_(true);
            Tensor y = Functional.linear(x, w, null);
            assertArrayEquals(new long[] {2, 0}, y.shape());
            y.sum().backward();
            assertTrue(x.grad().equal(Tensor.zeros(2, 3)));
            assertArrayEquals(new long[] {0, 3}, w.grad().shape());
        }
    }

    /** A 1-d input (in): with no input features y is the bias; with no output features dx is zeros. */
    @Test
    void linearOnAVectorAtZeroSizes() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.zeros(0).requiresGrad_(true);
            Tensor w = Tensor.zeros(4, 0).requiresGrad_(true);
            Tensor b = Tensor.randn(4).requiresGrad_(true);
            Tensor y = Functional.linear(x, w, b);
            assertTrue(y.equal(b));
            y.sum().backward();
            assertArrayEquals(new long[] {0}, x.grad().shape());
            assertArrayEquals(new long[] {4, 0}, w.grad().shape());
            assertTrue(b.grad().equal(Tensor.ones(4)));

            Tensor x3 = Tensor.randn(3).requiresGrad_(true);
            Tensor w0 = Tensor.zeros(0, 3).requiresGrad_(true);
            Tensor y0 = Functional.linear(x3, w0, null);
            assertArrayEquals(new long[] {0}, y0.shape());
            y0.sum().backward();
            assertTrue(x3.grad().equal(Tensor.zeros(3)));
        }
    }

    /** Input with a zero-size dimension among the leading ones and no input features: (2, 0, 0) · (0, 4)ᵀ. */
    @Test
    void linearWithAnEmptyLeadingDimension() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.zeros(2, 0, 3).requiresGrad_(true);
            Tensor w = Tensor.randn(4, 3).requiresGrad_(true);
            Tensor b = Tensor.randn(4).requiresGrad_(true);
            Tensor y = Functional.linear(x, w, b);
            assertArrayEquals(new long[] {2, 0, 4}, y.shape());
            y.sum().backward();
            assertArrayEquals(new long[] {2, 0, 3}, x.grad().shape());
            assertTrue(w.grad().equal(Tensor.zeros(4, 3)));
            assertTrue(b.grad().equal(Tensor.zeros(4)));
        }
    }

    /** matmul / mm without a graph (the shim's split product path) at zero inner, row and column sizes: zeros or empty. */
    @Test
    void matmulWithoutAGraphAtZeroSizes() {
        long[][][] cases = {
            {{2, 3, 0}, {0, 4}, {2, 3, 4}},
            {{2, 0, 3}, {3, 4}, {2, 0, 4}},
            {{2, 3, 4}, {4, 0}, {2, 3, 0}},
            {{0, 3, 4}, {4, 5}, {0, 3, 5}},
            {{3, 0}, {0, 5}, {3, 5}},
        };
        try (TensorScope s = TensorScope.open()) {
            for (long[][] c : cases) {
                Tensor a = Tensor.randn(c[0]), b = Tensor.randn(c[1]);
                Tensor y = a.matmul(b);
                assertArrayEquals(c[2], y.shape(), Arrays.toString(c[0]) + " @ " + Arrays.toString(c[1]));
                assertTrue(y.equal(Tensor.zeros(c[2])), Arrays.toString(c[0]) + " @ " + Arrays.toString(c[1]));
                if (c[0].length == 2) assertTrue(a.mm(b).equal(Tensor.zeros(c[2])));
                // With a graph (ATen's matmul): the same, and gradients of the right shapes.
                Tensor ag = a.detach().requiresGrad_(true), bg = b.detach().requiresGrad_(true);
                Tensor yg = ag.matmul(bg);
                assertTrue(yg.equal(y));
                yg.sum().backward();
                assertArrayEquals(c[0], ag.grad().shape());
                assertArrayEquals(c[1], bg.grad().shape());
            }
        }
    }

    // ------------------------------------------------------------------ attention

    /**
     * Attention as PyTorch 2.6's F.scaled_dot_product_attention computes it, composed of plain
     * tensor ops: softmax(q·kᵀ·scale + mask)·v, where scale is 1/√d, and with d = 0 the scores are
     * the mask alone (an empty product is 0; PyTorch gives softmax(mask)·v there, the mean of v's
     * rows without a mask, not NaN).
     */
    private static Tensor composed(Tensor q, Tensor k, Tensor v, Tensor mask) {
        long d = q.size(-1);
        Tensor scores = q.matmul(k.transpose(-2, -1));
        if (d > 0) scores = scores.mul(1 / Math.sqrt(d));
        if (mask != null) scores = scores.add(mask);
        return scores.softmax(-1).matmul(v);
    }

    private static void checkAttention(long[] lead, long L, long S, long d, long dv, boolean withMask, DType dtype) {
        String what = Arrays.toString(lead) + " L=" + L + " S=" + S + " d=" + d + " dv=" + dv + (withMask ? " masked " : " ") + dtype;
        try (TensorScope s = TensorScope.open()) {
            Tensor q = Tensor.randn(dtype, shape(lead, L, d)), k = Tensor.randn(dtype, shape(lead, S, d));
            Tensor v = Tensor.randn(dtype, shape(lead, S, dv));
            Tensor mask = withMask ? Tensor.randn(dtype, L, S) : null;
            Tensor c = Tensor.randn(dtype, shape(lead, L, dv)); // the upstream gradient
            Tensor expected;
            Tensor[] expectedGrads = new Tensor[3];
            {
                Tensor qr = q.detach().requiresGrad_(true), kr = k.detach().requiresGrad_(true), vr = v.detach().requiresGrad_(true);
                expected = composed(qr, kr, vr, mask);
                expected.mul(c).sum().backward();
                expectedGrads[0] = grad(qr);
                expectedGrads[1] = grad(kr);
                expectedGrads[2] = grad(vr);
            }
            try (NoGradScope ng = Torch.noGrad()) {
                Tensor y = Functional.scaledDotProductAttention(q, k, v, mask, 0, false);
                assertClose(expected, y, what + ": output without grad");
            }
            Tensor qg = q.detach().requiresGrad_(true), kg = k.detach().requiresGrad_(true), vg = v.detach().requiresGrad_(true);
            Tensor y = Functional.scaledDotProductAttention(qg, kg, vg, mask, 0, false);
            assertClose(expected, y, what + ": output with grad");
            y.mul(c).sum().backward();
            assertClose(expectedGrads[0], grad(qg), what + ": dq");
            assertClose(expectedGrads[1], grad(kg), what + ": dk");
            assertClose(expectedGrads[2], grad(vg), what + ": dv");
        }
    }

    /** A leaf's gradient, or zeros of its shape when backward left none (an empty tensor gets none). */
    private static Tensor grad(Tensor t) {
        Tensor g = t.grad();
        return g != null ? g : Tensor.zeros(t.dtype(), t.shape());
    }

    private static void assertClose(Tensor expected, Tensor actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what + " shape");
        assertFalse(expected.numel() > 0 && !expected.allFinite(), what + ": the reference is not finite");
        assertTrue(actual.allclose(expected, 1e-5, 1e-6), what + ": " + actual + " vs " + expected);
    }

    private static long[] shape(long[] lead, long a, long b) {
        long[] s = Arrays.copyOf(lead, lead.length + 2);
        s[lead.length] = a;
        s[lead.length + 1] = b;
        return s;
    }

    @Test
    void attentionAtZeroSizesMatchesComposedOps() {
        Torch.manualSeed(7);
        long[][] leads = {{2}, {2, 3}, {0}, {2, 0}};
        long[][] sizes = { // L, S, d, dv
            {3, 0, 4, 5}, {3, 4, 0, 5}, {0, 4, 4, 5}, {3, 4, 4, 0}, {3, 0, 0, 5}, {0, 0, 0, 0}, {3, 4, 4, 5}};
        for (DType dtype : new DType[] {DType.FLOAT32, DType.FLOAT64})
            for (long[] lead : leads)
                for (long[] z : sizes)
                    for (boolean mask : new boolean[] {false, true}) checkAttention(lead, z[0], z[1], z[2], z[3], mask, dtype);
    }

    /** 2-d inputs (no batch dimensions: LibTorch's own kernel) at the same sizes. */
    @Test
    void attentionWithoutBatchDimensionsAtZeroSizes() {
        Torch.manualSeed(8);
        long[][] sizes = {{3, 0, 4, 5}, {3, 4, 0, 5}, {0, 4, 4, 5}, {3, 4, 4, 0}};
        for (long[] z : sizes)
            for (boolean mask : new boolean[] {false, true}) checkAttention(new long[0], z[0], z[1], z[2], z[3], mask, DType.FLOAT32);
    }

    /** A causal mask over an empty key sequence: zeros, as without one. */
    @Test
    void causalAttentionOverNoKeys() {
        try (TensorScope s = TensorScope.open()) {
            Tensor q = Tensor.randn(2, 3, 4), k = Tensor.randn(2, 0, 4), v = Tensor.randn(2, 0, 5);
            Tensor y = Functional.scaledDotProductAttention(q, k, v, null, 0, true);
            assertTrue(y.equal(Tensor.zeros(2, 3, 5)), y.toString());
        }
    }
}
