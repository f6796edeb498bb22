package dev.lora4j;

import dev.lora4j.testing.ChildJvm;
import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Native lifetimes under misuse, each in a child JVM ({@link LifetimeHazards}) because the
 * failure this guards against is a crash: closes racing calls on other threads, a view read
 * after its tensor became unreachable, an optimizer unreachable during its own step in compiled
 * code, and the native memory of a training loop that never closes anything.
 */
class NativeLifetimeTest {

    private static ChildJvm.Result hazard(List<String> jvmArgs, String... args) throws Exception {
        ChildJvm.Result r = ChildJvm.run(LifetimeHazards.class, jvmArgs, args);
        System.out.println(r.output());
        assertEquals(0, r.exitCode(), "child JVM failed (exit " + r.exitCode() + "):\n" + r.output());
        assertTrue(r.output().contains("ok"), r.output());
        return r;
    }

    @Test
    void closingWhileAnotherThreadUsesTheObjectIsAJavaExceptionNeverACrash() throws Exception {
        hazard(List.of("-Xmx256m"), "races", "500");
    }

    @Test
    void readingGradientsWhileOtherThreadsRunBackwardIsNeverACrash() throws Exception {
        hazard(List.of("-Xmx256m"), "grad-race", "4");
    }

    @Test
    void aDataViewKeepsItsTensorFromTheSafetyNet() throws Exception {
        hazard(List.of("-Xmx64m"), "view-outlives-net");
    }

    @Test
    void aTemporaryOptimizerSurvivesItsOwnStepInCompiledCodeUnderCollections() throws Exception {
        hazard(List.of("-Xmx32m", "-XX:-TieredCompilation", "-XX:CompileThreshold=200", "-XX:+UseSerialGC"),
                "temporary-optimizer", "5000");
    }

    /**
     * The bound: with a 32 MiB budget for unowned tensors, the README's loop without close
     * (a 1 GiB heap, as the tests run with) grows resident memory by less than 192 MiB between
     * step 90 and step 1,800, and the safety net reports where it had to free tensors. Before
     * the budget existed it grew by about 400 MiB on this loop and freed nothing; it measured
     * about 0.25 MiB per step, of which the counted tensors (the batch) are 0.1 MiB and the rest
     * the unclosed losses' autograd graphs, which the budget cannot see (so the bound allows
     * about twice the budget, plus glibc's retained free memory).
     */
    @Test
    void readmeTrainingLoopWithoutCloseStaysWithinItsResidentBound() throws Exception {
        ChildJvm.Result r = hazard(List.of("-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch", "-Dlora4j.maxUnownedBytes=32m"),
                "readme-without-close", "1800");
        Matcher m = Pattern.compile("rssWarm=(\\d+) rssEnd=(\\d+) reclaimed=(\\d+)").matcher(r.output());
        assertTrue(m.find(), r.output());
        long grew = Long.parseLong(m.group(2)) - Long.parseLong(m.group(1));
        assertTrue(grew < 192L << 20, "resident memory grew by " + (grew >> 20) + " MiB (bound 192 MiB)");
        assertTrue(Long.parseLong(m.group(3)) > 0, "the safety net freed nothing");
        assertTrue(r.output().contains("the safety net freed a tensor"), "no warning: " + r.output());
        assertTrue(r.output().contains("readmeWithoutClose"), "the warning does not name the creation site: " + r.output());
        assertEquals(1, r.output().split("the safety net freed a tensor", -1).length - 1, "warned more than once");
    }

    @Test
    void strictModeThrowsInsteadOfCollecting() throws Exception {
        hazard(List.of("-Dlora4j.strictUnowned=true", "-Dlora4j.maxUnownedBytes=8m"), "strict");
    }

    @Test
    void theBudgetReadsByteCountsAndDefaultsToAFractionOfPhysicalMemory() {
        assertEquals(512L << 20, NativeBudget.budget("512m", 0));
        assertEquals(2L << 30, NativeBudget.budget(" 2G ", 0));
        assertEquals(4096, NativeBudget.budget("4k", 0));
        assertEquals(1000, NativeBudget.budget("1000", 0));
        assertEquals(96L << 20, NativeBudget.budget(null, 24L << 30)); // 1/256
        assertEquals(32L << 20, NativeBudget.budget(null, 1L << 30)); // at least 32 MiB
        assertEquals(256L << 20, NativeBudget.budget("", 1L << 40)); // at most 256 MiB
        for (String bad : new String[] {"lots", "-1m", "12q", "99999999999g"}) {
            var e = assertThrows(IllegalArgumentException.class, () -> NativeBudget.budget(bad, 0));
            assertTrue(e.getMessage().contains("lora4j.maxUnownedBytes"), e.getMessage());
        }
    }

    @Test
    void unownedTensorsCountTheirBytesUntilClosedOrOwned() {
        long before = Torch.unownedTensorBytes();
        Tensor t = Tensor.zeros(1 << 20); // 4 MiB, float32
        assertEquals(4L << 20, Torch.unownedTensorBytes() - before, 64 << 10);
        t.close();
        assertEquals(0, Torch.unownedTensorBytes() - before, 64 << 10);
        try (TensorScope s = TensorScope.open()) {
            Tensor scoped = Tensor.zeros(1 << 20);
            assertEquals(0, Torch.unownedTensorBytes() - before, 64 << 10);
            scoped.keep(); // the caller's now
            assertEquals(4L << 20, Torch.unownedTensorBytes() - before, 64 << 10);
            try (var layer = new dev.lora4j.nn.Linear(1024, 1024)) { // parameters belong to the module
                assertEquals(4L << 20, Torch.unownedTensorBytes() - before, 64 << 10);
            }
            scoped.close();
        }
        assertEquals(0, Torch.unownedTensorBytes() - before, 64 << 10);
    }

    @Test
    void unownedBytesAreEachDtypesElementSize() {
        for (DType d : DType.values()) {
            long before = Torch.unownedTensorBytes();
            try (Tensor t = Tensor.zeros(d, 1 << 20)) {
                assertEquals(d.byteSize() << 20, Torch.unownedTensorBytes() - before, 64 << 10, d.name());
            }
            assertEquals(0, Torch.unownedTensorBytes() - before, 64 << 10, d.name());
        }
    }

    // Each thread keeps up to 64 KiB of its count to itself: the total still comes back exactly,
    // however tensors cross threads, and whether their threads are alive or not.
    @Test
    void unownedBytesComeBackExactlyWhenTensorsAreClosedOnOtherThreads() throws Exception {
        System.gc(); // the safety net frees earlier tests' garbage now, not during this test
        Thread.sleep(1500);
        long before = Torch.unownedTensorBytes();
        List<Tensor> mine = new java.util.ArrayList<>();
        for (int i = 0; i < 1000; i++) mine.add(Tensor.zeros(256)); // 1 KiB each
        assertEquals(1000L << 10, Torch.unownedTensorBytes() - before);
        Thread closer = Thread.ofPlatform().start(() -> mine.forEach(Tensor::close));
        closer.join();
        assertEquals(0, Torch.unownedTensorBytes() - before);

        List<Tensor> theirs = new java.util.ArrayList<>();
        Thread creator = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < 1000; i++) theirs.add(Tensor.zeros(256));
        });
        creator.join(); // ended, its tensors open
        assertEquals(1000L << 10, Torch.unownedTensorBytes() - before);
        theirs.forEach(Tensor::close);
        assertEquals(0, Torch.unownedTensorBytes() - before);
        Thread.sleep(2500); // the safety net's thread retires the ended thread's registry meanwhile
        assertEquals(0, Torch.unownedTensorBytes() - before);
    }
}
