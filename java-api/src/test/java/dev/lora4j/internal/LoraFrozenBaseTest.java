package dev.lora4j.internal;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.TorchException;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import org.junit.jupiter.api.Test;

/**
 * The fused LoRA linear with a frozen base (W and bias without gradients): the shim records one
 * autograd node of its own that never computes the base's gradients. Its values and gradients
 * must equal the op-by-op composition's and central finite differences.
 */
class LoraFrozenBaseTest {

    private static final double SCALE = 0.75;

    /** Loss weights that make every output element's gradient different. */
    private static Tensor weights(long[] shape, DType dtype) {
        return Tensor.randn(dtype, shape);
    }

    /** sum(y ⊙ c) for the fused layer. */
    private static Tensor fusedLoss(Tensor x, Tensor w, Tensor bias, Tensor a, Tensor bm, Tensor c) {
        return LoraOps.linear(x, w, bias, a, bm, SCALE).mul(c).sum();
    }

    /**
     * Gradients of A, B and x through the frozen-base node equal those of the plain composition
     * (separate leaves, op by op); W and bias get none.
     */
    private static void againstComposition(long[] xShape, long out, boolean bias, boolean xGrad) {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(11);
            long in = xShape[xShape.length - 1];
            Tensor x = Tensor.randn(xShape).requiresGrad_(xGrad);
            Tensor w = Tensor.randn(out, in);
            Tensor b = bias ? Tensor.randn(out) : null;
            Tensor a = Tensor.randn(3, in).requiresGrad_(true);
            Tensor bm = Tensor.randn(out, 3).requiresGrad_(true);
            long[] yShape = xShape.clone();
            yShape[yShape.length - 1] = out;
            Tensor c = weights(yShape, DType.FLOAT32);

            Tensor fused = LoraOps.linear(x, w, b, a, bm, SCALE);
            fused.mul(c).sum().backward();
            Tensor ga = a.grad().clone();
            Tensor gb = bm.grad().clone();
            Tensor gx = xGrad ? x.grad().clone() : null;
            assertNull(w.grad(), "no gradient for the frozen weight");
            if (bias) assertNull(b.grad(), "no gradient for the frozen bias");
            if (bias) { // a bias left trainable (as PEFT's layer leaves it) gets its gradient, the weight none
                b.requiresGrad_(true);
                LoraOps.linear(x, w, b, a, bm, SCALE).mul(c).sum().backward();
                Tensor gBias = b.grad().clone();
                b.clearGrad();
                Functional.linear(x, w, b).add(Functional.linear(Functional.linear(x, a, null), bm, null).mul(SCALE)).mul(c).sum().backward();
                assertTrue(gBias.allclose(b.grad(), 1e-4, 1e-5), "dbias");
                assertNull(w.grad(), "no gradient for the frozen weight");
                b.requiresGrad_(false);
                b.clearGrad();
            }
            a.clearGrad();
            bm.clearGrad();
            if (xGrad) x.clearGrad();

            Tensor plain = Functional.linear(x, w, b).add(Functional.linear(Functional.linear(x, a, null), bm, null).mul(SCALE));
            assertTrue(fused.allclose(plain, 1e-5, 1e-5), "forward");
            plain.mul(c).sum().backward();
            assertTrue(ga.allclose(a.grad(), 1e-4, 1e-5), "dA");
            assertTrue(gb.allclose(bm.grad(), 1e-4, 1e-5), "dB");
            if (xGrad) assertTrue(gx.allclose(x.grad(), 1e-4, 1e-5), "dx");
        }
    }

    @Test
    void gradientsEqualTheComposition() {
        againstComposition(new long[] {4, 5}, 7, true, false);
        againstComposition(new long[] {4, 5}, 7, true, true);
        againstComposition(new long[] {4, 5}, 7, false, true);
        againstComposition(new long[] {2, 3, 5}, 7, true, true);
    }

    /**
     * Shapes that reach every part of the shim's small-batch kernels (up to 16 rows: blocks of
     * 5 rows and their remainders, weight rows in pairs and one alone, 16-, 8- and 1-wide column
     * tails) and the fallback above 16 rows.
     */
    @Test
    void smallBatchKernelsEqualTheComposition() {
        againstComposition(new long[] {7, 37}, 19, true, true);
        againstComposition(new long[] {16, 40}, 33, true, true);
        againstComposition(new long[] {16, 40}, 33, false, false);
        againstComposition(new long[] {1, 8}, 1, true, true);
        againstComposition(new long[] {17, 40}, 33, true, true);
        againstComposition(new long[] {2, 4, 24}, 64, true, true);
    }

    /** Central differences in float64 on every entry of A, B and x. */
    @Test
    void gradientsEqualFiniteDifferences() {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(5);
            Tensor x = Tensor.randn(DType.FLOAT64, 2, 3, 4).requiresGrad_(true);
            Tensor w = Tensor.randn(DType.FLOAT64, 6, 4);
            Tensor bias = Tensor.randn(DType.FLOAT64, 6);
            Tensor a = Tensor.randn(DType.FLOAT64, 2, 4).requiresGrad_(true);
            Tensor bm = Tensor.randn(DType.FLOAT64, 6, 2).requiresGrad_(true);
            Tensor c = weights(new long[] {2, 3, 6}, DType.FLOAT64);
            fusedLoss(x, w, bias, a, bm, c).backward();
            double h = 1e-6;
            for (Tensor p : new Tensor[] {a, bm, x}) {
                double[] analytic = p.grad().contiguous().toDoubleArray();
                Tensor flat = p.detach().view(-1); // shares p's storage
                for (int i = 0; i < analytic.length; i++) {
                    double numeric;
                    try (var ng = Torch.noGrad(); TensorScope inner = TensorScope.open()) {
                        double v = flat.narrow(0, i, 1).item();
                        flat.narrow(0, i, 1).fill_(v + h);
                        double up = fusedLoss(x, w, bias, a, bm, c).item();
                        flat.narrow(0, i, 1).fill_(v - h);
                        double down = fusedLoss(x, w, bias, a, bm, c).item();
                        flat.narrow(0, i, 1).fill_(v);
                        numeric = (up - down) / (2 * h);
                    }
                    assertEquals(numeric, analytic[i], 1e-6 * Math.max(1, Math.abs(numeric)), "entry " + i);
                }
            }
        }
    }

    /** The node keeps autograd's rules: a saved factor changed in place, or a second backward, is a Java exception. */
    @Test
    void savedTensorsAreChecked() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 5).requiresGrad_(true);
            Tensor w = Tensor.randn(7, 5);
            Tensor a = Tensor.randn(3, 5).requiresGrad_(true);
            Tensor bm = Tensor.randn(7, 3).requiresGrad_(true);
            Tensor loss = LoraOps.linear(x, w, null, a, bm, SCALE).sum();
            try (var ng = Torch.noGrad()) {
                bm.mul_(2); // B is saved for dA and dx
            }
            assertThrows(TorchException.class, loss::backward);

            Tensor again = LoraOps.linear(x, w, null, a, bm, SCALE).sum();
            again.backward();
            assertThrows(TorchException.class, again::backward); // saved tensors were freed
        }
    }

    /**
     * LoraLinear's forward takes the fused path for a plain Linear base; it gives the values and
     * gradients of the adapter computed by hand.
     */
    @Test
    void loraLinearUsesItAndAgrees() {
        try (TensorScope s = TensorScope.open(); LoraLinear layer = new LoraLinear(new Linear(5, 7), LoraConfig.of(3, 6))) {
            Torch.manualSeed(2);
            Tensor a = layer.loraA();
            Tensor bm = layer.loraB();
            try (var ng = Torch.noGrad()) {
                bm.copy_(Tensor.randn(7, 3));
            }
            Linear base = (Linear) layer.baseLayer();
            assertFalse(base.weight().requiresGrad(), "the base is frozen");
            Tensor x = Tensor.randn(4, 5);
            Tensor c = weights(new long[] {4, 7}, DType.FLOAT32);
            Tensor y = layer.forward(x);
            y.mul(c).sum().backward();
            Tensor ga = a.grad().clone();
            Tensor gb = bm.grad().clone();
            a.clearGrad();
            bm.clearGrad();
            double scale = layer.scaling(LoraLinear.DEFAULT_ADAPTER);
            assertEquals(2.0, scale);
            Tensor ref = Functional.linear(x, base.weight(), base.bias())
                    .add(x.matmul(a.t()).matmul(bm.t()).mul(scale));
            assertTrue(y.allclose(ref, 1e-5, 1e-5), "forward");
            ref.mul(c).sum().backward();
            assertTrue(ga.allclose(a.grad(), 1e-4, 1e-5), "dA");
            assertTrue(gb.allclose(bm.grad(), 1e-4, 1e-5), "dB");
            assertNull(base.weight().grad());
        }
    }

    /**
     * The forward's bits do not depend on what trains: the frozen-base node (factors need
     * gradients), the factors frozen, and no-grad mode give the same values, for the few-row
     * kernel and for the BLAS path, 2-d and 3-d (a loaded adapter once computed other bits than
     * the same adapter in training).
     */
    @Test
    void theForwardIsTheSameBitsWhetherOrNotTheFactorsTrain() {
        for (long[] xShape : new long[][] {{2, 40}, {3, 5, 40}, {40, 40}}) {
            try (TensorScope s = TensorScope.open()) {
                Torch.manualSeed(5);
                Tensor x = Tensor.randn(xShape);
                Tensor w = Tensor.randn(24, 40);
                Tensor b = Tensor.randn(24);
                Tensor a = Tensor.randn(3, 40);
                Tensor bm = Tensor.randn(24, 3);
                Tensor frozen = LoraOps.linear(x, w, b, a, bm, SCALE);
                Tensor inference;
                try (var ng = Torch.noGrad()) {
                    inference = LoraOps.linear(x, w, b, a, bm, SCALE);
                }
                a.requiresGrad_(true);
                bm.requiresGrad_(true);
                Tensor training = LoraOps.linear(x, w, b, a, bm, SCALE);
                String shape = java.util.Arrays.toString(xShape);
                assertTrue(training.detach().equal(frozen), "factors training vs frozen, x " + shape);
                assertTrue(training.detach().equal(inference), "factors training vs no-grad, x " + shape);
            }
        }
    }
}
