package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;

/** Autograd from Java: requiresGrad, backward, grad accumulation, no-grad scopes, threads. */
class AutogradTest {

    @Test
    void gradientOfAClosedForm() {
        try (TensorScope s = TensorScope.open()) {
            // d/dx sum(x^3) = 3x^2
            Tensor x = Tensor.of(new double[] {1, -2, 0.5}, 3).requiresGrad_(true);
            assertTrue(x.isLeaf());
            assertNull(x.grad());
            Tensor y = x.pow(3).sum();
            assertFalse(y.isLeaf());
            assertTrue(y.requiresGrad());
            y.backward();
            assertArrayEquals(new double[] {3, 12, 0.75}, x.grad().toDoubleArray(), 1e-12);
            // Gradients accumulate, like PyTorch's.
            x.pow(3).sum().backward();
            assertArrayEquals(new double[] {6, 24, 1.5}, x.grad().toDoubleArray(), 1e-12);
            x.zeroGrad();
            assertArrayEquals(new double[] {0, 0, 0}, x.grad().toDoubleArray());
            x.clearGrad();
            assertNull(x.grad());
        }
    }

    @Test
    void backwardWithAnExplicitGradientAndRetainGraph() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2}, 2).requiresGrad_(true);
            Tensor y = x.mul(x); // dy/dx = 2x
            y.backward(Tensor.of(new double[] {1, 10}, 2), true);
            assertArrayEquals(new double[] {2, 40}, x.grad().toDoubleArray(), 1e-12);
            y.backward(Tensor.of(new double[] {1, 0}, 2), false);
            assertArrayEquals(new double[] {4, 40}, x.grad().toDoubleArray(), 1e-12);
            assertThrows(TorchException.class, () -> y.backward(Tensor.of(new double[] {1, 1}, 2), false));
        }
    }

    @Test
    void noGradScopeStopsRecordingAndRestores() {
        try (TensorScope s = TensorScope.open()) {
            Tensor w = Tensor.ones(2).requiresGrad_(true);
            assertTrue(Torch.isGradEnabled());
            try (NoGradScope ng = Torch.noGrad()) {
                assertFalse(Torch.isGradEnabled());
                assertFalse(w.mul(2.0).requiresGrad());
                w.add_(1.0); // in-place update of a leaf: allowed without grad
                try (NoGradScope nested = Torch.noGrad()) {
                    assertFalse(Torch.isGradEnabled());
                }
                assertFalse(Torch.isGradEnabled(), "the nested scope restores the outer state");
            }
            assertTrue(Torch.isGradEnabled());
            assertTrue(w.mul(2.0).requiresGrad());
            assertArrayEquals(new float[] {2, 2}, w.toFloatArray());
            assertThrows(TorchException.class, () -> w.add_(1.0), "in-place on a leaf that requires grad");
        }
    }

    @Test
    void gradModeIsPerThread() throws Exception {
        var pool = Executors.newSingleThreadExecutor();
        try (NoGradScope ng = Torch.noGrad()) {
            assertTrue(pool.submit(Torch::isGradEnabled).get(), "another thread keeps grad mode on");
            var closing = pool.submit(ng::close);
            var e = assertThrows(java.util.concurrent.ExecutionException.class, closing::get);
            assertInstanceOf(IllegalStateException.class, e.getCause());
        } finally {
            pool.shutdown();
        }
        assertTrue(Torch.isGradEnabled());
    }

    @Test
    void detachCutsTheGraph() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.ones(2).requiresGrad_(true);
            Tensor d = x.mul(3.0).detach();
            assertFalse(d.requiresGrad());
            assertTrue(d.isLeaf());
        }
    }
}
