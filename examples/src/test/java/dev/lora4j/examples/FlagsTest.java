package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The examples' flags: --name value or --name=value, unknown flags and flags without a value refused by name. */
class FlagsTest {

    private static String refused(Runnable r) {
        return assertThrows(IllegalArgumentException.class, r::run).getMessage();
    }

    @Test
    void bothFormsAreRead() {
        String[] args = {"--epochs=5", "--lr", "1e-3", "--out=a=b"};
        assertEquals(5, Flags.intFlag(args, "--epochs", 1));
        assertEquals(1e-3, Flags.doubleFlag(args, "--lr", 0));
        assertEquals("a=b", Flags.flag(args, "--out"));
        assertNull(Flags.flag(args, "--cache"));
        assertEquals(7, Flags.intFlag(args, "--seq", 7));
    }

    @Test
    void aFlagWithoutAValueIsRefused() {
        String m = refused(() -> Flags.flag(new String[] {"--lr", "1e-3", "--out"}, "--out"));
        assertTrue(m.contains("--out"), m);
        m = refused(() -> Flags.check(new String[] {"--out", "--lr", "1"}, List.of("--out", "--lr")));
        assertTrue(m.contains("--out") && m.contains("value"), m);
        m = refused(() -> Flags.check(new String[] {"--lr", "1", "--out"}, List.of("--out", "--lr")));
        assertTrue(m.contains("--out") && m.contains("value"), m);
    }

    @Test
    void unknownFlagsAndStrayArgumentsAreRefused() {
        List<String> known = List.of("--epochs", "--lr");
        String m = refused(() -> Flags.check(new String[] {"--epoch", "5"}, known));
        assertTrue(m.contains("--epoch") && m.contains("--epochs"), "names the flag and the known ones: " + m);
        m = refused(() -> Flags.check(new String[] {"--epoch=5"}, known));
        assertTrue(m.contains("--epoch"), m);
        m = refused(() -> Flags.check(new String[] {"5"}, known));
        assertTrue(m.contains("'5'"), m);
        m = refused(() -> Flags.check(new String[] {"--lr", "1", "--lr=2"}, known));
        assertTrue(m.contains("--lr") && m.contains("twice"), m);
        Flags.check(new String[] {"--lr", "1", "--lr=1"}, known); // the same value again, as scripts/serve.sh passes --adapters
        Flags.check(new String[] {"--epochs", "5", "--lr=-1"}, known);
        Flags.check(new String[] {"--no-mlp", "--epochs", "5"}, known, List.of("--no-mlp"));
        m = refused(() -> Flags.check(new String[] {"--no-mlp=yes"}, known, List.of("--no-mlp")));
        assertTrue(m.contains("--no-mlp"), m);
    }

    @Test
    void numbersThatDoNotParseAreRefusedByName() {
        String m = refused(() -> Flags.intFlag(new String[] {"--seed", "5000000000"}, "--seed", 0));
        assertTrue(m.contains("--seed") && m.contains("5000000000"), m);
        assertEquals(5_000_000_000L, Flags.longFlag(new String[] {"--seed", "5000000000"}, "--seed", 0));
        m = refused(() -> Flags.doubleFlag(new String[] {"--lr", "fast"}, "--lr", 0));
        assertTrue(m.contains("--lr") && m.contains("fast"), m);
    }
}
