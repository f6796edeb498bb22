package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Torch;
import org.junit.jupiter.api.Test;

/** Seed 003 at small size: the rank-1 LoRA recovers the all-ones delta, and merged it fits. */
class RegressionDemoTest {

    @Test
    void loraRecoversTheAllOnesDeltaAndTheMergedModelFitsTheNewData() {
        long reclaimed = Torch.reclaimedTensorCount();
        RegressionDemo.Result r = RegressionDemo.run(600, 41, 40, 300, 1, false);
        assertEquals(1.0, r.deltaMean(), 0.05, "mean of ΔW");
        assertTrue(r.deltaMaxAbsError() < 0.1, "max |ΔW - 1| = " + r.deltaMaxAbsError());
        assertTrue(r.baseLossOnNewData() > 10, "the shift must hurt the base model: " + r.baseLossOnNewData());
        assertTrue(r.mergedLoss() < 1e-2 * r.baseLossOnNewData(), "merged MSE " + r.mergedLoss());
        assertEquals(r.loraLoss(), r.mergedLoss(), 1e-3 + 1e-2 * r.loraLoss(), "merging keeps the fit");
        assertEquals(reclaimed, Torch.reclaimedTensorCount(), "the demo closes what it creates");
    }
}
