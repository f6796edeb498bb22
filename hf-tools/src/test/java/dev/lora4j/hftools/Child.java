package dev.lora4j.hftools;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs a test's dangerous part in a child JVM with the test's class path, so a native abort fails the test instead of killing it. */
final class Child {

    record Result(int exitCode, String output) {
        @Override
        public String toString() {
            return "exit " + exitCode + ":\n" + output;
        }
    }

    private Child() {}

    static Result run(Class<?> main, long timeoutSeconds, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Xmx512m");
        cmd.add("-XX:-CreateCoredumpOnCrash");
        cmd.add("-XX:ErrorFile=" + Path.of(System.getProperty("java.io.tmpdir"), "lora4j-child-hs_err_%p.log"));
        System.getProperties().forEach((k, v) -> {
            String key = k.toString();
            if (key.startsWith("lora4j.") || key.equals("offline") || key.equals("DJL_CACHE_DIR")) cmd.add("-D" + key + "=" + v);
        });
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(main.getName());
        cmd.addAll(List.of(args));
        Path log = Files.createTempFile("lora4j-child", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                return new Result(-1, "timed out after " + timeoutSeconds + " s\n" + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
