package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The DyLoRA experiment's main path at a small size: every adapter (a LoRA per rank, and one
 * DyLoRA per variant evaluated at every rank) lifts the pre-trained model well above its
 * near-chance accuracy on inverted images, and one DyLoRA run costs less than the LoRA runs.
 */
class DyLoraExperimentTest {

    @TempDir
    Path dir;

    @Test
    void everyRankOfEveryApproachAdaptsAndDyLoraTrainsOnce() throws Exception {
        DyLoraExperiment.Result r = DyLoraExperiment.run(300, 300, 64, 1e-2, 4, 3, 0, 3000, dir.resolve("out"), dir.resolve("cache"), false);
        assertTrue(r.baseAccuracy() < 0.2, "inverted images fool the base model: " + r.baseAccuracy());
        for (int i = 0; i < 3; i++) {
            assertTrue(r.loraAccuracy()[i] > r.baseAccuracy() + 0.25, "LoRA rank " + (i + 1) + ": " + r.loraAccuracy()[i]);
            for (double[] v : r.variantAccuracy()) {
                assertTrue(v[i] > r.baseAccuracy() + 0.1, "DyLoRA rank " + (i + 1) + ": " + v[i]);
            }
        }
        for (double t : r.variantSeconds()) assertTrue(t < r.loraSeconds(), t + " s vs " + r.loraSeconds() + " s");
        assertTrue(Files.size(r.plot()) > 10_000);
    }
}
