package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.MergeSafetyTest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A PEFT folder saved while another thread loads it: every load sees the old adapter or the new
 * one, whole (weights and config of one save: the rank-1 weights with the rank-1 config, the
 * rank-2 weights with the rank-2 config); and saved files get the process's default
 * permissions (its umask), not owner-only.
 */
class PairedFilesTest {

    @TempDir
    Path dir;

    /** A model whose adapter has rank {@code r} and B filled with {@code r} (the marker the reader checks). */
    private static MergeSafetyTest.Net model(int r) {
        MergeSafetyTest.Net net = new MergeSafetyTest.Net();
        Lora.wrap(net, LoraConfig.of(r, 2 * r));
        try (var ng = Torch.noGrad()) {
            for (LoraLayer l : Lora.loraLayers(net).values()) l.loraB().fill_(r);
        }
        return net;
    }

    @Test
    void readersSeeTheOldAdapterOrTheNewOneNeverAMix() throws Exception {
        Path folder = dir.resolve("adapter");
        try (TensorScope s = TensorScope.open(); MergeSafetyTest.Net one = model(1); MergeSafetyTest.Net two = model(2)) {
            PeftAdapter.save(one, LoraLayer.DEFAULT_ADAPTER, folder);
            AtomicBoolean done = new AtomicBoolean();
            List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
            AtomicInteger[] seen = {new AtomicInteger(), new AtomicInteger(), new AtomicInteger()};
            Thread reader = new Thread(() -> {
                while (!done.get()) {
                    try (TensorScope rs = TensorScope.open(); MergeSafetyTest.Net net = new MergeSafetyTest.Net()) {
                        PeftAdapter.load(net, folder);
                        LoraLinear fc1 = (LoraLinear) net.child("fc1");
                        int r = fc1.r();
                        double[] b = fc1.loraB().toDoubleArray();
                        for (double v : b) assertEquals(r, v, "rank-" + r + " config with weights of another save");
                        assertEquals(2.0, fc1.scaling(), "alpha from the same save");
                        seen[r].incrementAndGet();
                    } catch (Throwable t) {
                        errors.add(t);
                        return;
                    }
                }
            });
            reader.start();
            for (int i = 0; i < 60 && errors.isEmpty(); i++) PeftAdapter.save(i % 2 == 0 ? two : one, LoraLayer.DEFAULT_ADAPTER, folder);
            done.set(true);
            reader.join();
            if (!errors.isEmpty()) throw new AssertionError("a reader failed", errors.get(0));
            assertTrue(seen[1].get() + seen[2].get() > 0, "the reader loaded something");
            try (var files = Files.list(folder)) {
                assertEquals(List.of(PeftAdapter.CONFIG, PeftAdapter.WEIGHTS),
                        files.map(p -> p.getFileName().toString()).sorted().toList(), "no temporary file left behind");
            }
        }
    }

    @Test
    void aWeightsFileFromAnotherSaveIsRefused() throws Exception {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        try (TensorScope s = TensorScope.open(); MergeSafetyTest.Net one = model(1); MergeSafetyTest.Net two = model(2);
             MergeSafetyTest.Net target = new MergeSafetyTest.Net()) {
            PeftAdapter.save(one, LoraLayer.DEFAULT_ADAPTER, a);
            PeftAdapter.save(two, LoraLayer.DEFAULT_ADAPTER, b);
            // Same rank, other alpha: the shapes fit, only the digest tells the files apart.
            MergeSafetyTest.Net twoAlpha = new MergeSafetyTest.Net();
            Lora.wrap(twoAlpha, LoraConfig.of(1, 7));
            Path c = dir.resolve("c");
            PeftAdapter.save(twoAlpha, LoraLayer.DEFAULT_ADAPTER, c);
            Files.copy(c.resolve(PeftAdapter.WEIGHTS), a.resolve(PeftAdapter.WEIGHTS), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            java.io.IOException e = assertThrows(java.io.IOException.class, () -> PeftAdapter.load(target, a));
            assertTrue(e.getMessage().contains("was not saved with this"), e.getMessage());
            assertTrue(Lora.loraLayers(target).isEmpty());
            twoAlpha.close();
        }
    }

    @Test
    void savedFilesFollowTheUmask() throws Exception {
        Path folder = dir.resolve("perm");
        try (TensorScope s = TensorScope.open(); MergeSafetyTest.Net one = model(1)) {
            PeftAdapter.save(one, LoraLayer.DEFAULT_ADAPTER, folder);
            Path probe = Files.createFile(dir.resolve("probe")); // what the umask gives a new file
            var expected = Files.getPosixFilePermissions(probe);
            assertEquals(expected, Files.getPosixFilePermissions(folder.resolve(PeftAdapter.CONFIG)), "config permissions");
            assertEquals(expected, Files.getPosixFilePermissions(folder.resolve(PeftAdapter.WEIGHTS)), "weights permissions");
        }
    }
}
