package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Several named adapters on one layer and one model: PEFT's layout, activation, merge by name, deletion. */
class NamedAdaptersTest {

    /** Random A and B so that ΔW ≠ 0 (one of them starts at zero). */
    static void randomize(LoraLayer l, String name) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            l.loraA(name).copy_(Tensor.randn(l.loraA(name).shape()));
            l.loraB(name).copy_(Tensor.randn(l.loraB(name).shape()));
        }
    }

    /** x·(W + Σ ΔW)ᵀ + bias: the reference built from the weights, independent of forward. */
    static Tensor reference(LoraLinear l, Tensor x, String... adapters) {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Tensor w = l.baseLayer().parameter("weight");
            for (String a : adapters) w = w.add(l.deltaWeight(a));
            return Functional.linear(x, w, l.baseLayer().parameter("bias")).keep();
        }
    }

    @Test
    void layerHoldsNamedAdaptersUnderPeftNames() {
        Torch.manualSeed(3);
        try (LoraLinear l = new LoraLinear(new Linear(6, 4), "a", LoraConfig.of(2, 4)); TensorScope s = TensorScope.open()) {
            l.addAdapter("b", LoraConfig.of(3, 1.5).withRslora(true));
            randomize(l, "a");
            randomize(l, "b");
            assertEquals(List.of("a", "b"), l.adapterNames());
            assertEquals(List.of("a"), l.activeAdapters(), "the first adapter is active, later ones are not");
            assertTrue(l.namedParameters().keySet().containsAll(List.of("lora_A.a.weight", "lora_B.a.weight", "lora_A.b.weight",
                    "lora_B.b.weight", "base_layer.weight")), l.namedParameters().keySet().toString());
            assertArrayEquals(new long[] {3, 6}, l.loraA("b").shape());
            assertEquals(1.5 / Math.sqrt(3), l.scaling("b"), 1e-15);
            assertTrue(l.loraA("a").requiresGrad());
            assertFalse(l.loraA("b").requiresGrad(), "inactive adapters are frozen, as PEFT's set_adapter does");

            Tensor x = Tensor.randn(5, 6);
            l.eval();
            assertTrue(l.forward(x).allclose(reference(l, x, "a"), 1e-5, 1e-6));
            l.setActiveAdapters("a", "b");
            assertTrue(l.loraA("b").requiresGrad());
            assertTrue(l.forward(x).allclose(reference(l, x, "a", "b"), 1e-5, 1e-6), "active adapters add up");
            l.setActiveAdapters("b");
            assertFalse(l.loraA("a").requiresGrad());
            assertTrue(l.forward(x).allclose(reference(l, x, "b"), 1e-5, 1e-6));
            assertEquals(3, l.r(), "accessors without a name speak of the first active adapter");
            l.setActiveAdapters();
            assertTrue(l.forward(x).allclose(reference(l, x), 1e-6, 1e-7), "no active adapter: the base layer");

            assertThrows(IllegalArgumentException.class, () -> l.setActiveAdapters("c"));
            assertThrows(IllegalArgumentException.class, () -> l.addAdapter("a", LoraConfig.of(1)));
            assertThrows(IllegalArgumentException.class, () -> l.addAdapter("x.y", LoraConfig.of(1)));
            assertThrows(IllegalArgumentException.class, () -> l.addAdapter(AdapterBank.BASE, LoraConfig.of(1)));
            assertThrows(IllegalArgumentException.class, () -> l.loraA("zzz"));
        }
    }

    @Test
    void mergeAndUnmergeByName() {
        Torch.manualSeed(4);
        try (LoraLinear l = new LoraLinear(new Linear(5, 3), LoraConfig.of(2, 2)); TensorScope s = TensorScope.open()) {
            l.addAdapter("b", LoraConfig.of(1, 3));
            randomize(l, "default");
            randomize(l, "b");
            l.eval();
            Tensor w0 = l.baseLayer().parameter("weight").clone();
            Tensor x = Tensor.randn(4, 5);
            l.setActiveAdapters("default", "b");
            Tensor both = l.forward(x);

            assertTrue(l.merge(false, "b"));
            assertEquals(List.of("b"), l.mergedAdapters());
            assertTrue(l.baseLayer().parameter("weight").allclose(w0.add(l.deltaWeight("b")), 1e-6, 1e-7), "W + ΔW_b");
            assertTrue(l.forward(x).allclose(both, 1e-5, 1e-6), "merged b plus unmerged default: the same output");
            assertFalse(l.merge(false, "b"), "merging a merged adapter is a no-op");
            assertThrows(IllegalStateException.class, () -> l.deleteAdapter("b"), "a merged adapter cannot be deleted");

            assertTrue(l.merge(false));
            assertEquals(List.of("b", "default"), l.mergedAdapters());
            assertTrue(l.forward(x).allclose(both, 1e-5, 1e-6));
            assertTrue(l.unmerge());
            assertTrue(l.baseLayer().parameter("weight").allclose(w0, 1e-6, 1e-6), "unmerge restores W");
            assertFalse(l.isMerged());

            l.deleteAdapter("b");
            assertEquals(List.of("default"), l.adapterNames());
            assertEquals(List.of("default"), l.activeAdapters());
            assertFalse(l.namedParameters().containsKey("lora_A.b.weight"));
        }
    }

    @Test
    void modelLevelAddSetDeleteWithoutWrappingTwice() {
        Torch.manualSeed(5);
        try (Sequential model = new Sequential(new Linear(4, 8), Activation.relu(), new Linear(8, 3)); TensorScope s = TensorScope.open()) {
            Lora.wrap(model, LoraConfig.of(2));
            Lora.WrapReport r = Lora.addAdapter(model, "second", LoraConfig.of(4, 8).withTargetModules("2"));
            assertEquals(List.of("2"), r.wrapped(), "only the target gets the adapter, and LoRA layers are not wrapped again");
            assertInstanceOf(LoraLinear.class, model.get(2));
            assertInstanceOf(Linear.class, ((LoraLinear) model.get(2)).baseLayer());
            assertEquals(List.of("default", "second"), Lora.adapterNames(model));
            assertEquals(List.of("default"), Lora.activeAdapters(model));
            assertThrows(IllegalArgumentException.class, () -> Lora.addAdapter(model, "second", LoraConfig.of(1)));

            Lora.setAdapter(model, "second");
            assertEquals(List.of(), ((LoraLayer) model.get(0)).activeAdapters(), "layers without the adapter: base only");
            assertEquals(List.of("second"), ((LoraLayer) model.get(2)).activeAdapters());
            assertEquals(4 * 8 + 4 * 3, model.trainableParameterCount(), "only the active adapter trains");
            assertThrows(IllegalArgumentException.class, () -> Lora.setAdapter(model, "nope"));

            Lora.deleteAdapter(model, "second");
            assertEquals(List.of("default"), Lora.adapterNames(model));
            assertThrows(IllegalArgumentException.class, () -> Lora.deleteAdapter(model, "second"));
            Lora.setAdapter(model, "default");
            assertEquals(2 * (4 + 8) + 2 * (8 + 3), model.trainableParameterCount());
        }
    }

    @Test
    void embeddingHoldsNamedAdapters() {
        Torch.manualSeed(6);
        try (LoraEmbedding l = new LoraEmbedding(new Embedding(10, 4), "x", LoraConfig.of(2, 2)); TensorScope s = TensorScope.open()) {
            l.addAdapter("y", LoraConfig.of(3, 3));
            randomize(l, "y");
            assertTrue(l.namedParameters().keySet().containsAll(List.of("lora_embedding_A.x", "lora_embedding_B.y")));
            l.setActiveAdapters("y");
            Tensor ids = Tensor.of(new long[] {1, 7, 7, 0}, 4);
            Tensor expected = Functional.embedding(ids, l.baseLayer().parameter("weight").add(l.deltaWeight("y")));
            assertTrue(l.forward(ids).allclose(expected, 1e-5, 1e-6));
        }
    }
}
