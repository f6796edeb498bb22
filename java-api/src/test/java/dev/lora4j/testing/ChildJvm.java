package dev.lora4j.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs a test's dangerous part (one that could crash a JVM on a regression: SIGSEGV, SIGBUS, a
 * glibc abort) in a child JVM with the test's class path and lora4j settings, so a crash fails
 * the test instead of killing the test JVM.
 */
public final class ChildJvm {

    /** How the child ended: its exit code (134, 135, 139... for a signal) and what it printed. */
    public record Result(int exitCode, String output) {
        public boolean crashed() {
            return exitCode > 128;
        }

        @Override
        public String toString() {
            return "exit " + exitCode + ":\n" + output;
        }
    }

    private ChildJvm() {}

    /** Runs {@code main}'s {@code main(args)} in a child JVM and waits at most {@code timeoutSeconds}. */
    public static Result run(Class<?> main, long timeoutSeconds, String... args) throws IOException, InterruptedException {
        return run(main, List.of(), timeoutSeconds, Map.of(), args);
    }

    /** As {@link #run(Class, long, String...)} with five minutes to finish and extra JVM options. */
    public static Result run(Class<?> main, List<String> jvmArgs, String... args) throws IOException, InterruptedException {
        return run(main, jvmArgs, 300, Map.of(), args);
    }

    /**
     * Runs {@code main} in a child JVM with {@code jvmArgs} after the defaults (so they win) and
     * {@code env}'s changes to the environment (a variable mapped to {@code null} is removed), and
     * waits at most {@code timeoutSeconds}; a child still running then is killed (exit code -1).
     */
    public static Result run(Class<?> main, List<String> jvmArgs, long timeoutSeconds, Map<String, String> env, String... args)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Xmx512m");
        cmd.add("-XX:-CreateCoredumpOnCrash");
        cmd.add("-XX:ErrorFile=" + Path.of(System.getProperty("java.io.tmpdir"), "lora4j-child-hs_err_%p.log"));
        System.getProperties().forEach((k, v) -> {
            if (k.toString().startsWith("lora4j.")) cmd.add("-D" + k + "=" + v);
        });
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(main.getName());
        cmd.addAll(List.of(args));
        Path log = Files.createTempFile("lora4j-child", ".log");
        try {
            ProcessBuilder builder = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
            env.forEach((k, v) -> {
                if (v == null) builder.environment().remove(k);
                else builder.environment().put(k, v);
            });
            Process p = builder.start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                return new Result(-1, "timed out after " + timeoutSeconds + " s\n" + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }

    /** Deletes {@code dir} and everything under it (a child's scratch folder), best effort. */
    public static void deleteTree(Path dir) {
        if (dir == null || !Files.exists(dir)) return;
        try (var walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort
                }
            });
        } catch (IOException e) {
            // best effort
        }
    }
}
