package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Parametrization;
import dev.lora4j.nn.Parametrize;
import dev.lora4j.nn.Sequential;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Seed 000's parametrization style: counts, names, the enabled switch, removal. */
class LoraParametrizationTest {

    private static Sequential seedMlp() {
        return new Sequential(new Linear(784, 1000), Activation.relu(), new Linear(1000, 2000), Activation.relu(),
                new Linear(2000, 10));
    }

    @Test
    void seed000ParameterCounts() {
        try (Sequential mlp = seedMlp()) {
            assertEquals(2_807_010, mlp.parameterCount());
            for (int i : new int[] {0, 2, 4}) LoraParametrization.register(mlp.get(i), 1, 1);
            assertEquals(2_813_804, mlp.parameterCount());
            assertTrue(mlp.namedParameters().containsKey("0.parametrizations.weight.original"));
            assertTrue(mlp.namedParameters().containsKey("0.parametrizations.weight.0.lora_A"));
            assertTrue(mlp.namedParameters().containsKey("4.parametrizations.weight.0.lora_B"));
            // Freeze everything but the adapters, as the seed does.
            mlp.namedParameters().forEach((n, p) -> p.requiresGrad_(n.contains("lora_")));
            assertEquals(1784 + 3000 + 2010, mlp.trainableParameterCount());
        }
    }

    @Test
    void weightIsWPlusScaledBATimesAndTheSwitchRestoresTheOriginalExactly() {
        Torch.manualSeed(3);
        try (Linear layer = new Linear(5, 4); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(3, 5);
            float[] before = layer.forward(x).toFloatArray();
            LoraParametrization p = LoraParametrization.register(layer, 2, 4.0);
            assertArrayEquals(before, layer.forward(x).toFloatArray(), "B starts at zero: no change");
            try (var ng = Torch.noGrad()) {
                p.loraB().copy_(Tensor.randn(4, 2));
            }
            // Expected: x·(W + 2·B·A)ᵀ + b, computed from the parts.
            Tensor w = Parametrize.original(layer, "weight");
            Tensor expected = x.matmul(w.add(p.loraB().matmul(p.loraA()).mul(2.0)).t()).add(layer.bias());
            assertTrue(layer.forward(x).allclose(expected, 1e-5, 1e-6));
            p.setEnabled(false);
            assertArrayEquals(before, layer.forward(x).toFloatArray(), "disabled adapter gives the original output exactly");
            p.setEnabled(true);
            assertFalse(layer.forward(x).allclose(Tensor.of(before, 3, 4), 1e-4, 1e-4));
        }
    }

    @Test
    void gradientsReachOnlyTheAdapterWhenTheBaseIsFrozen() {
        Torch.manualSeed(4);
        try (Linear layer = new Linear(3, 2); TensorScope s = TensorScope.open()) {
            LoraParametrization p = LoraParametrization.register(layer, 1, 1);
            Parametrize.original(layer, "weight").requiresGrad_(false);
            layer.bias().requiresGrad_(false);
            layer.forward(Tensor.randn(4, 3)).pow(2).sum().backward();
            assertNull(Parametrize.original(layer, "weight").grad());
            assertNotNull(p.loraB().grad());
            assertEquals(List.of(p.loraA(), p.loraB()), layer.trainableParameters());
        }
    }

    @Test
    void removingKeepsOrDropsTheDelta() {
        Torch.manualSeed(5);
        for (boolean keep : new boolean[] {true, false}) {
            try (Linear layer = new Linear(3, 2); TensorScope s = TensorScope.open()) {
                Tensor x = Tensor.randn(2, 3);
                float[] original = layer.forward(x).toFloatArray();
                LoraParametrization p = LoraParametrization.register(layer, 1, 1);
                try (var ng = Torch.noGrad()) {
                    p.loraB().fill_(0.5);
                }
                float[] adapted = layer.forward(x).toFloatArray();
                Parametrize.removeParametrizations(layer, "weight", keep);
                assertFalse(Parametrize.isParametrized(layer, "weight"));
                // As in PyTorch, the restored parameter is registered anew, after the bias.
                assertEquals(List.of("bias", "weight"), List.copyOf(layer.namedParameters().keySet()));
                assertArrayEquals(keep ? adapted : original, layer.forward(x).toFloatArray(), 1e-6f);
                assertEquals(8, layer.parameterCount());
            }
        }
    }

    @Test
    void aParametrizationMustKeepTheShape() {
        try (Linear layer = new Linear(3, 2)) {
            Parametrization transpose = new Parametrization() {
                @Override
                public Tensor forward(Tensor original) {
                    return original.t();
                }
            };
            var e = assertThrows(IllegalArgumentException.class,
                    () -> Parametrize.registerParametrization(layer, "weight", transpose));
            assertTrue(e.getMessage().contains("keep its shape"), e.getMessage());
            try (TensorScope s = TensorScope.open()) {
                assertArrayEquals(new long[] {4, 2}, layer.forward(Tensor.ones(4, 3)).shape(), "the layer still works");
            }
        }
    }
}
