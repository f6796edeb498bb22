package dev.lora4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.Torch;
import java.io.File;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** lora4j as named modules: a small program on the module path runs, and the internal package stays closed. */
class ModulePathTest {

    private static Path codeSource(Class<?> c) throws Exception {
        return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
    }

    /** dev.lora4j, dev.lora4j.bindings and Jackson, as on a user's module path. */
    private static String modulePath() throws Exception {
        List<String> parts = new ArrayList<>();
        for (Class<?> c : List.of(Torch.class, dev.lora4j.bindings.LibLora4j.class,
                com.fasterxml.jackson.databind.ObjectMapper.class, com.fasterxml.jackson.core.JsonFactory.class,
                com.fasterxml.jackson.annotation.JsonProperty.class)) {
            parts.add(codeSource(c).toString());
        }
        return String.join(File.pathSeparator, parts);
    }

    private static String nativeJar() {
        return Arrays.stream(System.getProperty("java.class.path").split(File.pathSeparator))
                .filter(p -> p.contains("lora4j-native")).findFirst().orElseThrow();
    }

    /** Compiles module "demo" with one class; returns javac's exit code and writes its messages to out. */
    private static int compile(Path dir, String mainSource, StringWriter out) throws Exception {
        Path src = dir.resolve("src");
        Files.createDirectories(src.resolve("demo"));
        Files.writeString(src.resolve("module-info.java"), "module demo { requires dev.lora4j; }\n");
        Files.writeString(src.resolve("demo/Main.java"), mainSource);
        return ToolProvider.getSystemJavaCompiler().run(null, null, null, "-Xlint:all", "-Werror",
                "-d", dir.resolve("out").toString(), "--module-path", modulePath(),
                src.resolve("module-info.java").toString(), src.resolve("demo/Main.java").toString()) == 0 ? 0 : 1;
    }

    @Test
    void aProgramOnTheModulePathRuns(@TempDir Path dir) throws Exception {
        StringWriter messages = new StringWriter();
        assertEquals(0, compile(dir, """
                package demo;
                import dev.lora4j.Tensor;
                public class Main {
                    public static void main(String[] args) {
                        try (Tensor t = Tensor.ones(2, 3)) {
                            System.out.println("sum=" + t.sum().item());
                        }
                    }
                }
                """, messages), messages::toString);
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--module-path", modulePath() + File.pathSeparator + nativeJar() + File.pathSeparator + dir.resolve("out"),
                "--add-modules", "ALL-MODULE-PATH", "--enable-native-access=dev.lora4j,dev.lora4j.bindings",
                "-m", "demo/demo.Main");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), output);
        assertTrue(output.contains("sum=6.0"), output);
        assertFalse(output.contains("WARNING"), output);
    }

    @Test
    void theInternalPackageIsNotExported(@TempDir Path dir) throws Exception {
        StringWriter messages = new StringWriter();
        int rc = compile(dir, """
                package demo;
                public class Main {
                    public static void main(String[] args) {
                        dev.lora4j.internal.NativeLibrary.ensureLoaded();
                    }
                }
                """, messages);
        assertNotEquals(0, rc, "dev.lora4j.internal is reachable from another module");
    }
}
