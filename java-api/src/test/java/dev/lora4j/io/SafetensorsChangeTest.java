package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.testing.ChildJvm;
import org.junit.jupiter.api.Test;

/** A safetensors file rewritten in place while it is read: an IOException or the whole tensor, never a dead JVM. */
class SafetensorsChangeTest {

    @Test
    void readingAFileThatIsRewrittenMeanwhileNeverKillsTheJvm() throws Exception {
        ChildJvm.Result r = ChildJvm.run(SafetensorsTruncation.class, 120, "3");
        assertFalse(r.crashed(), "the child JVM crashed (exit " + r.exitCode() + "):\n" + r.output());
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("reads ok"), r.output());
        System.out.println(r.output().strip());
    }
}
