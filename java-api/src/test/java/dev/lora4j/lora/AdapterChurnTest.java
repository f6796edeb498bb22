package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.testing.ChildJvm;
import org.junit.jupiter.api.Test;

/**
 * Adapter changes while traffic runs: 8 forward threads and one thread that loads, deletes,
 * merges, unmerges, sets, combines and disables adapters, every answer equal to the serial
 * answer of one state the forward could have seen (see {@link AdapterChurn}). Runs in a child
 * JVM, since without the library's discipline this crashes the JVM. It runs for
 * {@code -Dlora4j.test.churnSeconds} seconds (default 10; the minute is 60).
 */
class AdapterChurnTest {

    @Test
    void forwardsSeeOneConsistentStateWhileAdaptersChange() throws Exception {
        double seconds = Double.parseDouble(System.getProperty("lora4j.test.churnSeconds", "10"));
        ChildJvm.Result r = ChildJvm.run(AdapterChurn.class, (long) seconds + 120, String.valueOf(seconds), "8");
        assertFalse(r.crashed(), "the child JVM crashed (exit " + r.exitCode() + "):\n" + r.output());
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("churn ok"), r.output());
        System.out.println(r.output().strip());
    }
}
