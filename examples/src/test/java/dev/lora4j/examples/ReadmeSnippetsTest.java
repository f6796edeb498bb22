package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code java} block of the README compiles as written (here, where java-api and hf-tools are both on the class path), with {@code javac -Xlint:all
 * -Werror}. A block that is a whole class compiles as it is; the others are read in order, like
 * a notebook: each sees the imports of the blocks before it, and its statements go in a method
 * that has the variables the README's prose introduces ({@code model}, {@code data}, {@code x},
 * {@code dyModel}) as parameters.
 */
class ReadmeSnippetsTest {

    /** The variables the README's prose introduces: type and name. */
    private static final String[][] CONTEXT = {
        {"dev.lora4j.nn.Sequential", "model"}, {"dev.lora4j.data.TensorDataset", "data"},
        {"dev.lora4j.Tensor", "x"}, {"dev.lora4j.nn.Sequential", "dyModel"},
    };

    private static final Pattern BLOCK = Pattern.compile("```java\\n(.*?)```", Pattern.DOTALL);

    @Test
    void everyJavaBlockCompilesWithoutWarnings(@TempDir Path dir) throws Exception {
        String readme = Files.readString(Path.of(System.getProperty("lora4j.readme", "../README.md")));
        Matcher m = BLOCK.matcher(readme);
        Set<String> imports = new LinkedHashSet<>();
        List<Path> sources = new ArrayList<>();
        int n = 0;
        while (m.find()) {
            String block = m.group(1);
            n++;
            if (block.contains(" class ")) {
                Matcher pkg = Pattern.compile("package ([\\w.]+);").matcher(block);
                Matcher cls = Pattern.compile("public class (\\w+)").matcher(block);
                assertTrue(pkg.find() && cls.find(), "block " + n + " is a class without package or public class");
                Path file = dir.resolve(pkg.group(1).replace('.', '/')).resolve(cls.group(1) + ".java");
                Files.createDirectories(file.getParent());
                Files.writeString(file, block);
                sources.add(file);
                continue;
            }
            StringBuilder body = new StringBuilder();
            for (String line : block.split("\n", -1)) {
                if (line.startsWith("import ")) imports.add(line);
                else body.append(line).append('\n');
            }
            List<String> params = new ArrayList<>();
            for (String[] v : CONTEXT) {
                boolean declared = Pattern.compile("\\b[\\w.]+(<[^>]*>)?\\s+" + v[1] + "\\s*=").matcher(body).find();
                if (!declared) params.add(v[0] + " " + v[1]);
            }
            String source = String.join("\n", imports) + "\n\nclass Snippet" + n + " {\n"
                    + "    @SuppressWarnings(\"try\") // the README's scopes are used for what they free\n"
                    + "    static void run(" + String.join(", ", params) + ") throws Exception {\n"
                    + body + "    }\n}\n";
            Path file = dir.resolve("Snippet" + n + ".java");
            Files.writeString(file, source);
            sources.add(file);
        }
        assertTrue(n >= 4, "found only " + n + " java blocks in the README");
        List<String> args = List.of("-Xlint:all", "-Werror", "-d", dir.resolve("out").toString(),
                "-cp", System.getProperty("java.class.path"));
        StringWriter messages = new StringWriter();
        var javac = ToolProvider.getSystemJavaCompiler();
        boolean ok = javac.getTask(messages, null, null, args, null,
                javac.getStandardFileManager(null, null, null).getJavaFileObjectsFromPaths(sources)).call();
        assertTrue(ok, "README snippets do not compile cleanly:\n" + messages);
    }
}
