package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.io.Safetensors;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fine-tune demo's main path on a small slice of Fashion-MNIST: fine-tuning raises the
 * worst class's accuracy, switching the adapters off restores the base predictions exactly,
 * the adapter file holds rank-1 factors for the three layers, and a second run uses the cache.
 */
class FineTuneTest {

    @TempDir
    Path dir;

    @Test
    void fineTuningRaisesTheWorstClassAndTogglingRestoresTheBaseExactly() throws Exception {
        FineTune.Settings s = new FineTune.Settings(1, 10, 1e-3, 30, 1, 1, 0, 3000, dir.resolve("out"), dir.resolve("cache"), false);
        FineTune.Result r = FineTune.run(s);
        assertFalse(r.usedCache());
        assertEquals(2_807_010, r.baseParameters());
        assertEquals(6_794, r.loraParameters());
        int w = r.worstClass();
        assertTrue(r.wrongAfter()[w] < r.wrongBefore()[w] / 2,
                "class " + w + ": wrong " + r.wrongBefore()[w] + " -> " + r.wrongAfter()[w]);
        assertArrayEquals(r.wrongBefore(), r.wrongAdapterOff(), "adapter off gives the base predictions");
        assertEquals(r.accuracyBefore(), r.accuracyAdapterOff());
        assertTrue(r.accuracyBefore() > 0.6, "the base model learned something: " + r.accuracyBefore());
        try (Safetensors.Contents c = Safetensors.read(r.adapterFile())) {
            assertEquals(6, c.tensors().size());
            assertArrayEquals(new long[] {1, 784}, c.tensors().get("0.parametrizations.weight.0.lora_A").shape());
            assertArrayEquals(new long[] {10, 1}, c.tensors().get("4.parametrizations.weight.0.lora_B").shape());
        }
        assertTrue(Files.size(r.plotFile()) > 10_000, "a PNG was written");

        FineTune.Result again = FineTune.run(s);
        assertTrue(again.usedCache(), "second run loads the cached base model");
        assertArrayEquals(r.wrongBefore(), again.wrongBefore(), "the cached model is the same model");
    }
}
