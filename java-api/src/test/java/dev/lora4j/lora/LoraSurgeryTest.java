package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Flatten;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Seed 001's model surgery and PEFT's target selection, trainable marking, merge-and-unload. */
class LoraSurgeryTest {

    /** A small named model: embed → (q, v, out) linears, like an attention block's names. */
    static final class Block extends Module {
        Block() {
            registerModule("q_proj", new Linear(8, 8));
            registerModule("v_proj", new Linear(8, 8));
            registerModule("out", new Linear(8, 3));
        }

        @Override
        public Tensor forward(Tensor x) {
            try (TensorScope s = TensorScope.open()) {
                Tensor h = child("q_proj").forward(x).add(child("v_proj").forward(x)).relu();
                return child("out").forward(h).keep();
            }
        }
    }

    @Test
    void wrapsEveryLinearByDefaultAndReportsIt() {
        try (Sequential model = new Sequential(new Linear(4, 6), Activation.relu(), new Linear(6, 2))) {
            long base = model.parameterCount();
            Lora.WrapReport report = Lora.wrap(model, LoraConfig.of(2));
            assertEquals(List.of("0", "2"), report.wrapped());
            assertInstanceOf(LoraLinear.class, model.get(0));
            assertInstanceOf(Activation.class, model.get(1));
            assertEquals(base + 2 * (4 + 6) + 2 * (6 + 2), model.parameterCount());
            assertEquals(2 * (4 + 6) + 2 * (6 + 2), model.trainableParameterCount());
            assertTrue(model.toString().contains("(base_layer): Linear(in_features=4, out_features=6, bias=True)"), model.toString());
            assertTrue(model.namedParameters().containsKey("0.lora_A.default.weight"), "PEFT names: lora_A.<adapter>.weight");
            assertTrue(model.namedParameters().containsKey("2.base_layer.weight"));
        }
    }

    @Test
    void targetNamesRegexAllLinearAndExclusions() {
        try (Block b = new Block()) {
            assertEquals(List.of("q_proj", "v_proj"), Lora.wrap(b, LoraConfig.of(2).withTargetModules("q_proj", "v_proj")).wrapped());
        }
        try (Block b = new Block()) {
            assertEquals(List.of("q_proj"), Lora.wrap(b, LoraConfig.of(2).withTargetRegex(".*q_.*")).wrapped());
        }
        try (Block b = new Block()) {
            Lora.WrapReport r = Lora.wrap(b, LoraConfig.of(2).withTargetModules("all-linear").withExcludeModules("out"));
            assertEquals(List.of("q_proj", "v_proj"), r.wrapped());
            assertEquals(List.of("out"), r.excluded());
        }
        try (Block b = new Block()) {
            var e = assertThrows(IllegalArgumentException.class, () -> Lora.wrap(b, LoraConfig.of(2).withTargetModules("k_proj")));
            assertTrue(e.getMessage().contains("k_proj"), e.getMessage());
        }
    }

    @Test
    void wrapsEmbeddingAndConvToo() {
        try (Sequential m = new Sequential(new Conv2d(1, 4, 3), new Flatten(), new Linear(4 * 4 * 4, 5));
             Embedding e = new Embedding(10, 4)) {
            assertEquals(List.of("0", "2"), Lora.wrap(m, LoraConfig.of(2)).wrapped());
            assertInstanceOf(LoraConv2d.class, m.get(0), "PEFT's class name for a Conv2d adapter");
            try (TensorScope s = TensorScope.open()) {
                assertArrayEquals(new long[] {2, 5}, m.forward(Tensor.randn(2, 1, 6, 6)).shape());
            }
            Sequential holder = new Sequential(e);
            Lora.wrap(holder, LoraConfig.of(2));
            assertInstanceOf(LoraEmbedding.class, holder.get(0));
        }
    }

    @Test
    void biasModesAndTheAdapterStateDict() {
        try (Block b = new Block()) {
            Lora.wrap(b, LoraConfig.of(2).withTargetModules("q_proj").withBias(LoraConfig.Bias.LORA_ONLY));
            assertTrue(b.module("q_proj.base_layer").parameter("bias").requiresGrad());
            assertFalse(b.module("v_proj").parameter("bias").requiresGrad());
            assertFalse(b.module("q_proj.base_layer").parameter("weight").requiresGrad());
            try (TensorScope s = TensorScope.open()) {
                Map<String, Tensor> sd = Lora.loraStateDict(b, LoraConfig.Bias.LORA_ONLY);
                assertEquals(List.of("q_proj.base_layer.bias", "q_proj.lora_A.default.weight", "q_proj.lora_B.default.weight"),
                        sd.keySet().stream().sorted().toList());
            }
            Lora.markOnlyLoraAsTrainable(b, LoraConfig.Bias.ALL);
            assertTrue(b.module("v_proj").parameter("bias").requiresGrad());
            Lora.markOnlyLoraAsTrainable(b, LoraConfig.Bias.NONE);
            assertEquals(2 * (8 + 8), b.trainableParameterCount());
        }
    }

    @Test
    void mergeAndUnloadGivesThePlainModelWithTheSameOutput() {
        Torch.manualSeed(11);
        try (Block b = new Block(); TensorScope s = TensorScope.open()) {
            Lora.wrap(b, LoraConfig.of(2, 4).withTargetModules("q_proj", "out"));
            try (var ng = Torch.noGrad()) {
                for (LoraLayer l : Lora.loraLayers(b).values()) ((LoraLinear) l).loraB().copy_(Tensor.randn(((LoraLinear) l).loraB().shape()));
            }
            b.eval();
            Tensor x = Tensor.randn(5, 8);
            Tensor before = b.forward(x);
            Lora.mergeAndUnload(b, true);
            assertTrue(Lora.loraLayers(b).isEmpty());
            assertInstanceOf(Linear.class, b.child("q_proj"));
            assertFalse(b.namedParameters().keySet().stream().anyMatch(n -> n.contains("lora_")));
            assertTrue(b.forward(x).allclose(before, 1e-5, 1e-5));
        }
    }

    @Test
    void disablingAMergedAdapterUnmergesItSoTheBaseIsTheOriginal() {
        Torch.manualSeed(12);
        try (Linear base = new Linear(4, 3); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(2, 4);
            Tensor original = base.forward(x);
            Tensor w0 = base.weight().clone();
            LoraLinear l = new LoraLinear(base, LoraConfig.of(2));
            try (var ng = Torch.noGrad()) {
                l.loraB().fill_(0.3);
            }
            Tensor adapted = l.forward(x);
            assertTrue(l.merge());
            assertTrue(l.forward(x).allclose(adapted, 1e-5, 1e-6));
            l.setAdapterEnabled(false);
            assertFalse(l.isMerged());
            assertTrue(l.forward(x).allclose(original, 1e-6, 1e-6));
            assertTrue(base.weight().allclose(w0, 0, 1e-6));
            assertTrue(l.merge(), "merging re-enables");
            assertTrue(l.isAdapterEnabled());
            l.unload();
        }
    }

    @Test
    void disableAdaptersScopeRestoresEvenWhenTheBlockThrows() {
        Torch.manualSeed(13);
        try (Block b = new Block(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(3, 8);
            Tensor base = b.forward(x);
            Lora.wrap(b, LoraConfig.of(2).withTargetModules("q_proj", "out"));
            try (var ng = Torch.noGrad()) {
                for (LoraLayer l : Lora.loraLayers(b).values()) ((LoraLinear) l).loraB().fill_(0.2);
            }
            ((LoraLayer) b.child("out")).setAdapterEnabled(false); // one adapter already off
            Tensor adapted = b.forward(x);
            assertFalse(adapted.allclose(base, 1e-4, 1e-4));
            try (Lora.AdapterScope off = Lora.disableAdapters(b)) {
                assertTrue(b.forward(x).allclose(base, 1e-6, 1e-6), "adapters off = the base model");
            }
            assertTrue(b.forward(x).allclose(adapted, 1e-6, 1e-6));
            assertFalse(((LoraLayer) b.child("out")).isAdapterEnabled(), "the earlier state comes back, not 'all on'");
            RuntimeException boom = new RuntimeException("boom");
            var e = assertThrows(RuntimeException.class, () -> {
                try (Lora.AdapterScope off = Lora.disableAdapters(b)) {
                    throw boom;
                }
            });
            assertSame(boom, e);
            assertTrue(((LoraLayer) b.child("q_proj")).isAdapterEnabled());
            assertTrue(b.forward(x).allclose(adapted, 1e-6, 1e-6));
        }
    }

    @Test
    void mergingAClosedModelIsAClearError() {
        Block b = new Block();
        Lora.wrap(b, LoraConfig.of(2));
        b.close();
        assertThrows(IllegalStateException.class, () -> Lora.merge(b, false));
    }
}
