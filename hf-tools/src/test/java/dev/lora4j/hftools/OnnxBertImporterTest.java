package dev.lora4j.hftools;

import static org.junit.jupiter.api.Assertions.*;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The importer on files that are not what it expects: each is an IOException naming the problem, and nothing is written. */
class OnnxBertImporterTest {

    @TempDir
    Path dir;

    /** A ModelProto whose graph holds one float initializer of the given name, dims and raw byte count. */
    static byte[] modelWithInitializer(String name, long[] dims, int rawBytes) throws IOException {
        ByteArrayOutputStream tensor = new ByteArrayOutputStream();
        CodedOutputStream t = CodedOutputStream.newInstance(tensor);
        for (long d : dims) t.writeInt64(1, d);
        t.writeInt32(2, 1);
        t.writeString(8, name);
        t.writeBytes(9, ByteString.copyFrom(new byte[rawBytes]));
        t.flush();
        ByteArrayOutputStream graph = new ByteArrayOutputStream();
        CodedOutputStream g = CodedOutputStream.newInstance(graph);
        g.writeByteArray(5, tensor.toByteArray());
        g.flush();
        ByteArrayOutputStream model = new ByteArrayOutputStream();
        CodedOutputStream m = CodedOutputStream.newInstance(model);
        m.writeInt64(1, 8); // ir_version
        m.writeByteArray(7, graph.toByteArray());
        m.flush();
        return model.toByteArray();
    }

    private IOException importFails(byte[] bytes) throws IOException {
        Path f = dir.resolve("m.onnx");
        Files.write(f, bytes);
        IOException e = assertThrows(IOException.class, () -> OnnxBertImporter.importModel(f, dir.resolve("out")));
        assertFalse(Files.exists(dir.resolve("out").resolve("model.safetensors")));
        return e;
    }

    @Test
    void garbageTruncatedAndGraphlessFilesAreRefused() throws IOException {
        assertNotNull(importFails(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f, 1, 2, 3}));
        byte[] good = modelWithInitializer("embeddings.LayerNorm.bias", new long[] {4}, 16);
        assertNotNull(importFails(java.util.Arrays.copyOf(good, good.length - 5)));
        assertTrue(importFails(new byte[] {8, 8}).getMessage().contains("no graph"));
    }

    @Test
    void sizesThatDisagreeWithTheDataAreRefusedBeforeAllocating() throws IOException {
        // Declares 2^40 elements, holds 16 bytes.
        IOException e = importFails(modelWithInitializer("embeddings.LayerNorm.bias", new long[] {1L << 20, 1L << 20}, 16));
        assertTrue(e.getMessage().contains("declares"), e.getMessage());
    }

    @Test
    void initializersWithNoPlaceInBertAreNamed() throws IOException {
        IOException e = importFails(modelWithInitializer("decoder.lm_head.weight", new long[] {4}, 16));
        assertTrue(e.getMessage().contains("decoder.lm_head.weight"), e.getMessage());
        e = importFails(modelWithInitializer("embeddings.LayerNorm.bias", new long[] {4}, 16));
        assertTrue(e.getMessage().contains("embeddings.word_embeddings.weight"), e.getMessage());
    }
}
