package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.NoGradScope;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * A LoraLinear refuses an input that its base Linear refuses with the same
 * IllegalArgumentException naming the shape, on every path: the one-call fused forward (one
 * active adapter, in training with a frozen base and in inference), several adapters, DoRA,
 * dropout in training and a mixed batch (Lora.forward with one adapter per row); never the native
 * "loraLinear: lora: x's last dimension must be a's in_features". The layer works afterwards.
 */
class LoraLinearInputTest {

    /** What the base Linear(3, 5) alone says about {@code x}. */
    private static String linearMessage(Tensor x) {
        try (Linear plain = new Linear(3, 5)) {
            return assertThrows(IllegalArgumentException.class, () -> plain.forward(x)).getMessage();
        }
    }

    private static void assertRefused(Supplier<Tensor> forward, Tensor x, String what) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, forward::get, what);
        assertEquals(linearMessage(x), e.getMessage(), what);
        assertTrue(e.getMessage().contains(java.util.Arrays.toString(x.shape())), what + ": " + e.getMessage());
    }

    /** Inputs Linear(3, 5) refuses: the wrong last dimension (more, fewer, none), a scalar. */
    private static Tensor[] badInputs() {
        return new Tensor[] {Tensor.randn(2, 4), Tensor.randn(2, 2), Tensor.randn(2, 6, 4), Tensor.randn(4), Tensor.randn(2, 0),
            Tensor.scalar(1, dev.lora4j.DType.FLOAT32)};
    }

    private static LoraLinear layer(LoraConfig config) {
        LoraLinear l = new LoraLinear(new Linear(3, 5), config);
        l.baseLayer().parameter("weight").requiresGrad_(false);
        NamedAdaptersTest.randomize(l, "default");
        return l;
    }

    /** Runs every bad input through {@code l} in training (grad mode) and in inference, then a good one. */
    private static void checkLayer(LoraLinear l, String what) {
        try (TensorScope s = TensorScope.open()) {
            l.eval();
            Tensor good = Tensor.randn(2, 3);
            Tensor before = l.forward(good);
            for (Tensor x : badInputs()) {
                l.train();
                assertRefused(() -> l.forward(x), x, what + " in training");
                l.eval();
                try (NoGradScope ng = Torch.noGrad()) {
                    assertRefused(() -> l.forward(x), x, what + " in inference");
                }
            }
            // Still healthy: a good input gives what it gave before.
            l.eval();
            assertTrue(l.forward(good).equal(before), what);
        }
    }

    @Test
    void fusedForwardRefusesTheWrongInFeaturesAsLinearDoes() {
        try (LoraLinear l = layer(LoraConfig.of(2, 4))) {
            checkLayer(l, "one adapter (fused)");
        }
    }

    @Test
    void fusedForwardWithATrainedBaseRefusesAsLinearDoes() {
        try (LoraLinear l = layer(LoraConfig.of(2, 4))) {
            l.baseLayer().parameter("weight").requiresGrad_(true);
            checkLayer(l, "one adapter, trained base");
        }
    }

    @Test
    void severalAdaptersDoraAndDropoutRefuseAsLinearDoes() {
        try (LoraLinear l = layer(LoraConfig.of(2, 4))) {
            l.addAdapter("second", LoraConfig.of(1, 2));
            NamedAdaptersTest.randomize(l, "second");
            l.setActiveAdapters("default", "second");
            checkLayer(l, "two adapters");
        }
        try (LoraLinear l = layer(LoraConfig.of(2, 4).withUseDora(true))) {
            checkLayer(l, "DoRA");
        }
        try (LoraLinear l = layer(LoraConfig.of(2, 4).withDropout(0.25))) {
            checkLayer(l, "dropout");
        }
    }

    @Test
    void mixedBatchRefusesTheWrongInFeaturesAsLinearDoes() {
        try (LoraLinear l = layer(LoraConfig.of(2, 4)); TensorScope s = TensorScope.open()) {
            l.addAdapter("b", LoraConfig.of(1, 2));
            NamedAdaptersTest.randomize(l, "b");
            for (boolean training : new boolean[] {false, true}) {
                if (training) l.train();
                else l.eval();
                Tensor x = Tensor.randn(2, 4);
                assertRefused(() -> Lora.forward(l, x, "default", "b"), x, "mixed batch" + (training ? " in training" : ""));
                Tensor x3 = Tensor.randn(2, 6, 4);
                assertRefused(() -> Lora.forward(l, x3, "b", AdapterBank.BASE), x3, "mixed 3-d batch");
            }
        }
    }

    /** In a model: the Linear a LoraLinear wraps refuses as the unwrapped model does. */
    @Test
    void wrappedModelRefusesAsTheUnwrappedOne() {
        try (TensorScope s = TensorScope.open()) {
            Module plain = new Sequential(new Linear(3, 5));
            Tensor x = Tensor.randn(2, 4);
            String expected = assertThrows(IllegalArgumentException.class, () -> plain.forward(x)).getMessage();
            Lora.wrap(plain, LoraConfig.of(2, 4));
            plain.eval();
            try (NoGradScope ng = Torch.noGrad()) {
                assertEquals(expected, assertThrows(IllegalArgumentException.class, () -> plain.forward(x)).getMessage());
            }
            plain.train();
            assertEquals(expected, assertThrows(IllegalArgumentException.class, () -> plain.forward(x)).getMessage());
        }
    }
}
