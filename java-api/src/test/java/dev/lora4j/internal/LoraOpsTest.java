package dev.lora4j.internal;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.TorchException;
import dev.lora4j.nn.Functional;
import org.junit.jupiter.api.Test;

/** The fused LoRA forward against the same computation op by op: values and gradients. */
class LoraOpsTest {

    /** Forward and the gradients of A, B (and x, W, bias) equal the unfused composition's. */
    private static void compare(long[] xShape, boolean bias) {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(3);
            Tensor x = Tensor.randn(xShape).requiresGrad_(true);
            Tensor w = Tensor.randn(7, 5).requiresGrad_(true);
            Tensor b = bias ? Tensor.randn(7).requiresGrad_(true) : null;
            Tensor a = Tensor.randn(3, 5).requiresGrad_(true);
            Tensor bm = Tensor.randn(7, 3).requiresGrad_(true);
            double scale = 0.75;

            Tensor fused = LoraOps.linear(x, w, b, a, bm, scale);
            fused.pow(2).sum().backward();
            Tensor[] g1 = {x.grad().clone(), w.grad().clone(), a.grad().clone(), bm.grad().clone(), bias ? b.grad().clone() : null};
            for (Tensor t : new Tensor[] {x, w, a, bm, b}) if (t != null) t.clearGrad();

            Tensor plain = Functional.linear(x, w, b).add(Functional.linear(Functional.linear(x, a, null), bm, null).mul(scale));
            plain.pow(2).sum().backward();
            assertTrue(fused.allclose(plain, 1e-5, 1e-5), "forward");
            Tensor[] g2 = {x.grad(), w.grad(), a.grad(), bm.grad(), bias ? b.grad() : null};
            for (int i = 0; i < g1.length; i++) {
                if (g1[i] != null) assertTrue(g1[i].allclose(g2[i], 1e-4, 1e-4), "gradient " + i);
            }
            // addDelta on a precomputed base result is the same update
            try (var ng = Torch.noGrad()) {
                Tensor base = Functional.linear(x, w, b);
                assertTrue(LoraOps.addDelta(base, x, a, bm, scale).allclose(fused, 1e-5, 1e-5), "addDelta");
            }
        }
    }

    @Test
    void matchesTheUnfusedForwardAndGradients() {
        compare(new long[] {4, 5}, true);
        compare(new long[] {4, 5}, false);
        compare(new long[] {2, 3, 5}, true);
    }

    @Test
    void badShapesAreJavaExceptions() {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 5);
            Tensor w = Tensor.randn(7, 5);
            assertThrows(TorchException.class, () -> LoraOps.linear(x, w, null, Tensor.randn(3, 6), Tensor.randn(7, 3), 1));
            assertThrows(TorchException.class, () -> LoraOps.linear(x, w, null, Tensor.randn(3, 5), Tensor.randn(7, 2), 1));
            assertThrows(TorchException.class, () -> LoraOps.addDelta(Tensor.randn(4, 8), x, Tensor.randn(3, 5), Tensor.randn(7, 3), 1));
            assertThrows(NullPointerException.class, () -> LoraOps.linear(null, w, null, Tensor.randn(3, 5), Tensor.randn(7, 3), 1));
            Tensor closed = Tensor.randn(3, 5);
            closed.close();
            assertThrows(IllegalStateException.class, () -> LoraOps.linear(x, w, null, closed, Tensor.randn(7, 3), 1));
        }
    }

    @Test
    void theAllocatorDecisionIsReported() {
        String a = NativeLibrary.allocator();
        assertFalse(a.equals("not configured"), a);
    }
}
