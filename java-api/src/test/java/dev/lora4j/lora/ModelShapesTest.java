package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraController;
import dev.lora4j.dylora.DyLoraLayer;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Models whose shape LoRA's surgery and merging used to get wrong: a model that is itself one
 * LoRA layer, a module used at two places, adapters changed while merged, inactive adapters,
 * DyLoRA layers of different r_max, and module trees that contain themselves.
 */
class ModelShapesTest {

    /** Adding an adapter to a model that is one LoRA layer adds it to that layer (it used to wrap the layer's own parts). */
    @Test
    void anAdapterAddedToALoraLayerGoesIntoIt() {
        try (LoraLinear l = new LoraLinear(new Linear(4, 3), LoraConfig.of(2))) {
            Lora.WrapReport r = Lora.addAdapter(l, "second", LoraConfig.of(1));
            assertEquals(List.of(""), r.wrapped());
            assertEquals(List.of("default", "second"), l.adapterNames());
            assertEquals(List.of("default"), l.activeAdapters(), "an added adapter is not active");
            assertTrue(l.namedParameters().keySet().stream().noneMatch(k -> k.contains("base_layer.base_layer")
                    || k.startsWith("lora_A.default.lora")), l.namedParameters().keySet().toString());
        }
    }

    /** A Linear used at two places and wrapped at both: merging would put both updates into its one weight; refused. */
    @Test
    void mergingIntoABaseUsedTwiceIsRefused() {
        Torch.manualSeed(3);
        Linear lin = new Linear(4, 4, false);
        try (Sequential m = new Sequential(lin, Activation.tanh(), lin); Tensor x = Tensor.randn(2, 4); TensorScope s = TensorScope.open()) {
            Lora.wrap(m, LoraConfig.of(2));
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                try (var ng = Torch.noGrad()) {
                    l.loraB().copy_(Tensor.randn(l.loraB().shape()));
                }
            }
            m.eval();
            double[] before = m.forward(x).toDoubleArray();
            double[] w = lin.weight().toDoubleArray();
            var e = assertThrows(IllegalStateException.class, () -> Lora.merge(m, false));
            assertTrue(e.getMessage().contains("also at"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> Lora.mergeAndUnload(m, false));
            assertArrayEquals(w, lin.weight().toDoubleArray(), "the shared weight is unchanged");
            assertArrayEquals(before, m.forward(x).toDoubleArray(), "unmerged forwards are right");
        }
    }

    /** Factors written while merged: unmerge would subtract another ΔW than it added; refused, the layer stays merged. */
    @Test
    void unmergingAfterTheFactorsChangedIsRefused() {
        Torch.manualSeed(4);
        try (LoraLinear l = new LoraLinear(new Linear(4, 3), LoraConfig.of(2)); TensorScope s = TensorScope.open()) {
            try (var ng = Torch.noGrad()) {
                l.loraB().copy_(Tensor.randn(3, 2));
            }
            l.eval();
            double[] base = l.baseLayer().parameter("weight").toDoubleArray();
            l.merge();
            l.loadStateDict(Map.of("lora_B.default.weight", Tensor.zeros(3, 2)), false);
            var e = assertThrows(IllegalStateException.class, l::unmerge);
            assertTrue(e.getMessage().contains("changed while merged"), e.getMessage());
            assertTrue(l.isMerged());
            assertFalse(java.util.Arrays.equals(base, l.baseLayer().parameter("weight").toDoubleArray()), "still merged");
        }
        try (LoraLinear l = new LoraLinear(new Linear(4, 3), LoraConfig.of(2)); TensorScope s = TensorScope.open()) {
            double[] base = l.baseLayer().parameter("weight").toDoubleArray();
            l.merge();
            l.unmerge(); // unchanged factors: restored exactly (ΔW is zero here, B starts at zero)
            assertArrayEquals(base, l.baseLayer().parameter("weight").toDoubleArray());
        }
    }

    /** As PEFT: marking LoRA trainable leaves inactive adapters frozen (it used to make every lora_ tensor trainable). */
    @Test
    void markingOnlyLoraTrainableKeepsInactiveAdaptersFrozen() {
        try (Sequential m = new Sequential(new Linear(4, 4), new Linear(4, 2))) {
            Lora.wrap(m, LoraConfig.of(2));
            Lora.addAdapter(m, "b", LoraConfig.of(1));
            Lora.markOnlyLoraAsTrainable(m, LoraConfig.Bias.NONE);
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                assertTrue(l.loraA("default").requiresGrad());
                assertFalse(l.loraA("b").requiresGrad(), "inactive adapter b");
                assertFalse(l.loraB("b").requiresGrad(), "inactive adapter b");
            }
        }
    }

    /** One rank for every DyLoRA layer or none changed: a rank one layer cannot take used to leave the others set. */
    @Test
    void aDyLoraRankOneLayerRefusesChangesNoLayer() {
        try (Sequential m = new Sequential(new Linear(4, 5), Activation.relu(), new Linear(5, 3))) {
            DyLora.wrap(m, LoraConfig.of(4));
            DyLoraLayer first = (DyLoraLayer) m.get(0);
            DyLoraLayer last = (DyLoraLayer) m.get(2);
            last.truncateRank(2);
            DyLora.setRank(m, 2);
            assertThrows(IllegalArgumentException.class, () -> DyLora.setRank(m, 3));
            assertEquals(2, first.rank());
            assertEquals(2, last.rank());
            DyLoraController ctl = DyLoraController.of(m, 7);
            ctl.setRank(1);
            assertThrows(IllegalArgumentException.class, () -> ctl.setRank(3));
            assertEquals(1, first.rank());
            assertEquals(1, ctl.rank());
        }
    }

    /** A module tree that contains itself has no end (every walk overflowed the stack): refused. */
    @Test
    void aModuleCannotContainItself() {
        try (Sequential a = new Sequential(new Linear(2, 2))) {
            assertThrows(IllegalArgumentException.class, () -> a.add(a));
            Sequential b = new Sequential(a);
            assertThrows(IllegalArgumentException.class, () -> a.replaceChild("0", b));
            assertEquals(1, a.size());
            Module.LoadResult r = a.loadStateDict(a.stateDict(), true);
            assertTrue(r.missingKeys().isEmpty());
            var nulls = new java.util.HashMap<String, Tensor>(a.stateDict());
            nulls.put("0.weight", null);
            var e = assertThrows(NullPointerException.class, () -> a.loadStateDict(nulls, true));
            assertTrue(e.getMessage().contains("0.weight"), e.getMessage());
        }
    }
}
