package dev.lora4j.lora;

import static dev.lora4j.nn.Functional.mseLoss;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Linear;
import dev.lora4j.optim.Adam;
import org.junit.jupiter.api.Test;

/**
 * Seed 003 at a small size: a frozen linear model fitted to y = X·θ; θ shifts by +1; a rank-1
 * {@link LoraLinear} trained with Adam recovers ΔW ≈ all ones, and merged, the plain layer fits
 * the new data.
 */
class LoraTrainingTest {

    @Test
    void rankOneLoraRecoversTheAllOnesShiftAndMergesIntoAFit() {
        Torch.manualSeed(2024);
        int n = 800, dIn = 31, dOut = 30;
        try (TensorScope s = TensorScope.open(); Linear base = new Linear(dIn, dOut, false)) {
            Tensor theta = Tensor.randn(dIn, dOut);
            // The "pre-trained" layer holds θ exactly (θᵀ as (out, in)).
            try (var ng = Torch.noGrad()) {
                base.weight().copy_(theta.t());
            }
            Tensor x2 = Tensor.randn(n, dIn);
            Tensor y2 = x2.matmul(theta.add(1.0));
            double baseLoss;
            try (var ng = Torch.noGrad()) {
                baseLoss = mseLoss(base.forward(x2), y2).item();
            }
            assertTrue(baseLoss > 10, "the shift hurts the base model: " + baseLoss);

            LoraLinear lora = new LoraLinear(base, LoraConfig.of(1, 1).withInit(LoraConfig.Init.NORMAL));
            assertEquals(dIn + dOut, lora.trainableParameterCount());
            try (Adam opt = new Adam(lora.trainableParameters(), 0.05)) {
                for (int step = 0; step < 400; step++) {
                    try (TensorScope it = TensorScope.open()) {
                        opt.zeroGrad();
                        mseLoss(lora.forward(x2), y2).backward();
                        opt.step();
                    }
                }
            }
            Tensor delta = lora.deltaWeight();
            assertEquals(1.0, delta.mean().item(), 0.05);
            assertTrue(delta.sub(1.0).abs().max().item() < 0.1, "ΔW ≈ 1 everywhere");
            double loraLoss;
            try (var ng = Torch.noGrad()) {
                loraLoss = mseLoss(lora.forward(x2), y2).item();
                assertTrue(lora.merge(true));
                double merged = mseLoss(base.forward(x2), y2).item();
                assertTrue(merged < 1e-3 * baseLoss, "merged plain layer fits: " + merged);
                assertEquals(loraLoss, merged, 1e-3 + 1e-3 * loraLoss);
            }
            assertSame(base, lora.unload()); // the adapter is closed; base by its try-with-resources
            assertTrue(lora.isClosed());
        }
    }
}
