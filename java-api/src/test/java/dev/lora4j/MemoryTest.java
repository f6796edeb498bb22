package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * A million create/op/free iterations keep resident memory flat and the safety-net counter
 * at zero. The bound: resident memory outside the Java heap and the JVM's other managed
 * pools (resident set size minus their committed sizes, so that the heap growing is not
 * mistaken for a leak) may grow by at most 64 MiB between the end of a 100,000-iteration
 * warm-up and the end of the run. A leak of one small tensor per iteration would cost well
 * over 200 MiB (a TensorImpl, its storage and the handle).
 */
class MemoryTest {

    private static final long BOUND = 64L << 20;

    @Test
    void millionCreateOpFreeIterationsStayFlat() throws IOException {
        long reclaimedBefore = Torch.reclaimedTensorCount();
        Tensor w = Tensor.ones(4);
        for (int i = 0; i < 100_000; i++) step(w);
        long rssWarm = rss();
        for (int i = 0; i < 900_000; i++) step(w);
        long rssEnd = rss();
        w.close();
        assertTrue(rssEnd - rssWarm < BOUND,
                "resident memory grew by " + (rssEnd - rssWarm) / (1 << 20) + " MiB (bound 64 MiB)");
        assertEquals(reclaimedBefore, Torch.reclaimedTensorCount(), "the Cleaner had to free tensors");
        System.out.printf("native resident memory after warm-up %d MiB, after 10^6 iterations %d MiB%n", rssWarm >> 20, rssEnd >> 20);
    }

    @Test
    void millionScopedIterationsStayFlat() throws IOException {
        Tensor w = Tensor.ones(4);
        for (int i = 0; i < 100_000; i++) scopedStep(w);
        long rssWarm = rss();
        for (int i = 0; i < 900_000; i++) scopedStep(w);
        long rssEnd = rss();
        w.close();
        assertTrue(rssEnd - rssWarm < BOUND,
                "resident memory grew by " + (rssEnd - rssWarm) / (1 << 20) + " MiB (bound 64 MiB)");
        System.out.printf("scoped: native resident memory after warm-up %d MiB, after 10^6 iterations %d MiB%n",
                rssWarm >> 20, rssEnd >> 20);
    }

    private static void step(Tensor w) {
        try (Tensor a = Tensor.ones(4); Tensor b = a.add(w)) {
            if (b.numel() != 4) throw new AssertionError();
        }
    }

    private static void scopedStep(Tensor w) {
        try (TensorScope s = TensorScope.open()) {
            Tensor.ones(4).mul(w).add(1.0);
        }
    }

    /** Resident memory not accounted for by the JVM's heap and non-heap pools. */
    static long rss() throws IOException {
        var mem = java.lang.management.ManagementFactory.getMemoryMXBean();
        return residentSetSize() - mem.getHeapMemoryUsage().getCommitted() - mem.getNonHeapMemoryUsage().getCommitted();
    }

    /** Resident set size of this process, from /proc/self/status. */
    static long residentSetSize() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("\\D+", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }
}
