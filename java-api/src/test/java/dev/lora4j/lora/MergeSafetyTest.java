package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.optim.AdamW;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Safe merges check every layer (and every adapter of a layer) before changing any, and merged
 * adapters cannot train while merged, so that unmerging restores the base weights exactly.
 */
public class MergeSafetyTest {

    /** fc1 (Linear 4→6), fc2 (Linear 6→3); also the model of the PEFT folder tests. */
    public static final class Net extends Module {
        public Net() {
            registerModule("fc1", new Linear(4, 6));
            registerModule("fc2", new Linear(6, 3));
        }

        @Override
        public Tensor forward(Tensor input) {
            try (TensorScope s = TensorScope.open()) {
                return child("fc2").forward(child("fc1").forward(input)).keep();
            }
        }
    }

    private static Map<String, Tensor> snapshot(Module m) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        m.stateDict().forEach((k, v) -> out.put(k, v.clone()));
        return out;
    }

    /** Makes {@code fc2}'s adapter {@code name} overflow float32 when merged (1e30·1e30). */
    private static void breakAdapter(LoraLayer fc2, String name) {
        try (var ng = Torch.noGrad()) {
            fc2.loraA(name).fill_(1e30);
            fc2.loraB(name).fill_(1e30);
        }
    }

    @Test
    void safeMergeAndUnloadChecksEveryLayerBeforeChangingAny() {
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            Lora.wrap(net, LoraConfig.of(2, 2));
            LoraLayer fc1 = (LoraLayer) net.child("fc1");
            LoraLayer fc2 = (LoraLayer) net.child("fc2");
            try (var ng = Torch.noGrad()) {
                fc1.loraB().fill_(0.5);
            }
            breakAdapter(fc2, LoraLayer.DEFAULT_ADAPTER);
            Map<String, Tensor> before = snapshot(net);
            assertThrows(IllegalStateException.class, () -> Lora.mergeAndUnload(net, true));
            assertSame(fc1, net.child("fc1"), "fc1 is still the LoRA layer");
            assertFalse(fc1.isMerged(), "and not merged");
            assertThrows(IllegalStateException.class, () -> Lora.merge(net, true));
            assertFalse(fc1.isMerged());
            before.forEach((k, v) -> assertTrue(v.equal(net.stateDict().get(k)), k + " unchanged"));
        }
    }

    @Test
    void aLayerMergesAllItsNamedAdaptersOrNone() {
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            Lora.wrap(net, LoraConfig.of(2, 2));
            Lora.addAdapter(net, "broken", LoraConfig.of(2, 2));
            LoraLayer fc2 = (LoraLayer) net.child("fc2");
            try (var ng = Torch.noGrad()) {
                fc2.loraB().fill_(0.5);
            }
            breakAdapter(fc2, "broken");
            Tensor w = fc2.baseLayer().parameter("weight").clone();
            assertThrows(IllegalStateException.class, () -> fc2.merge(true, LoraLayer.DEFAULT_ADAPTER, "broken"));
            assertEquals(java.util.List.of(), fc2.mergedAdapters());
            assertTrue(w.equal(fc2.baseLayer().parameter("weight")));
        }
    }

    @Test
    void mergedFactorsDoNotTrainSoUnmergeRestoresTheBaseExactly() {
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            Lora.wrap(net, LoraConfig.of(2, 2));
            LoraLayer fc1 = (LoraLayer) net.child("fc1");
            try (var ng = Torch.noGrad()) {
                fc1.loraB().fill_(0.25);
            }
            Tensor w = fc1.baseLayer().parameter("weight").clone();
            AdamW opt = new AdamW(net.trainableParameters(), AdamW.lr(0.1).weightDecay(0.5));
            net.forward(Tensor.randn(5, 4)).pow(2).sum().backward(); // gradients on the factors
            Lora.merge(net, false);
            assertFalse(fc1.loraA().requiresGrad(), "merged A frozen");
            assertFalse(fc1.loraB().requiresGrad(), "merged B frozen");
            Lora.markOnlyLoraAsTrainable(net, LoraConfig.Bias.NONE);
            assertFalse(fc1.loraA().requiresGrad(), "stays frozen while merged");
            opt.step(); // an optimizer built before merging must not move the merged factors
            Lora.unmerge(net);
            assertTrue(fc1.loraA().requiresGrad(), "trainable again once unmerged");
            Tensor after = fc1.baseLayer().parameter("weight");
            assertTrue(w.allclose(after, 0, 1e-6), "unmerge restores the base weight (up to rounding of W + ΔW − ΔW)");
            assertTrue(w.sub(after).abs().max().item() < 1e-6);
            opt.close();
        }
    }
}
