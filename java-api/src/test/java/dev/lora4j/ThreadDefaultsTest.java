package dev.lora4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.testing.ChildJvm;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * lora4j's OpenMP wait policy (see {@code ThreadDefaults}), checked against what libgomp itself
 * reports: each case runs a child JVM with {@code OMP_DISPLAY_ENV=VERBOSE}, which makes libgomp
 * print the {@code OMP_WAIT_POLICY} and {@code GOMP_SPINCOUNT} it read when LibTorch loaded it
 * (spin count 0 = passive, 300000 = libgomp's default, 30000000000 = active, 30000 = lora4j's
 * short spin).
 */
class ThreadDefaultsTest {

    /** Loads LibTorch, runs one parallel operation and prints {@link Torch#threadSettings()}. */
    public static final class Child {
        public static void main(String[] args) {
            Torch.setNumThreads(2);
            try (Tensor a = Tensor.ones(256, 256); Tensor b = a.matmul(a)) {
                System.out.println("settings: " + Torch.threadSettings());
            }
        }
    }

    private record Seen(String policy, String spinCount, String settings) {}

    private static Seen run(List<String> jvmArgs, Map<String, String> env) throws Exception {
        Map<String, String> childEnv = new HashMap<>();
        childEnv.put("OMP_WAIT_POLICY", null);
        childEnv.put("GOMP_SPINCOUNT", null);
        childEnv.put("OMP_DISPLAY_ENV", "VERBOSE");
        childEnv.putAll(env);
        ChildJvm.Result r = ChildJvm.run(Child.class, jvmArgs, 120, childEnv);
        assertEquals(0, r.exitCode(), r.output());
        return new Seen(find(r.output(), "OMP_WAIT_POLICY = '(\\w+)'"), find(r.output(), "GOMP_SPINCOUNT = '(\\d+)'"),
                find(r.output(), "settings: (.*)"));
    }

    private static String find(String output, String regex) {
        Matcher m = Pattern.compile(regex).matcher(output);
        assertTrue(m.find(), "no match for " + regex + " in:\n" + output);
        return m.group(1);
    }

    @Test
    void shortSpinThenSleepByDefault() throws Exception {
        Seen seen = run(List.of(), Map.of());
        assertEquals("PASSIVE", seen.policy());
        assertEquals("30000", seen.spinCount(), "libgomp's threads spin briefly, then sleep");
        assertTrue(seen.settings().contains("OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000 set by lora4j;"), seen.settings());
        assertTrue(seen.settings().contains("environment: OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000"), seen.settings());
        assertTrue(seen.settings().startsWith("intra-op threads 2;"), seen.settings());
    }

    @Test
    void environmentWins() throws Exception {
        Seen active = run(List.of(), Map.of("OMP_WAIT_POLICY", "active"));
        assertEquals("ACTIVE", active.policy());
        assertEquals("30000000000", active.spinCount());
        assertTrue(active.settings().contains("set by the environment"), active.settings());

        Seen passive = run(List.of(), Map.of("OMP_WAIT_POLICY", "passive"));
        assertEquals("0", passive.spinCount(), "a user's passive policy alone gets no spin added");

        Seen spin = run(List.of(), Map.of("GOMP_SPINCOUNT", "1234"));
        assertEquals("1234", spin.spinCount(), "a user's GOMP_SPINCOUNT alone is kept, no policy added");
    }

    @Test
    void propertyOverrides() throws Exception {
        Seen active = run(List.of("-Dlora4j.ompWaitPolicy=active"), Map.of("GOMP_SPINCOUNT", "5"));
        assertEquals("ACTIVE", active.policy());
        assertEquals("30000000000", active.spinCount(), "active drops the environment's spin count");

        Seen passive = run(List.of("-Dlora4j.ompWaitPolicy=PASSIVE"), Map.of("OMP_WAIT_POLICY", "active", "GOMP_SPINCOUNT", "5"));
        assertEquals("PASSIVE", passive.policy());
        assertEquals("0", passive.spinCount(), "the property wins over the environment");

        Seen shortSpin = run(List.of("-Dlora4j.ompWaitPolicy=short"), Map.of("OMP_WAIT_POLICY", "active"));
        assertEquals("PASSIVE", shortSpin.policy());
        assertEquals("30000", shortSpin.spinCount());
        assertTrue(shortSpin.settings().contains("(-Dlora4j.ompWaitPolicy)"), shortSpin.settings());

        Seen untouched = run(List.of("-Dlora4j.ompWaitPolicy=default"), Map.of());
        assertEquals("300000", untouched.spinCount(), "'default' leaves libgomp's own default");
    }

    @Test
    void badPropertyNamesIt() throws Exception {
        ChildJvm.Result r = ChildJvm.run(Child.class, List.of("-Dlora4j.ompWaitPolicy=sleepy"), 120, Map.of());
        assertTrue(r.exitCode() != 0
                && r.output().contains("-Dlora4j.ompWaitPolicy must be 'short', 'passive', 'active' or 'default'")
                && r.output().contains("sleepy"), r.output());
    }
}
