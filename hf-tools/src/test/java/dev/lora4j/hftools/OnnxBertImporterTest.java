package dev.lora4j.hftools;

import static org.junit.jupiter.api.Assertions.*;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import dev.lora4j.models.bert.BertConfig;
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
        return modelOf(tensor.toByteArray());
    }

    /** A ModelProto whose graph holds the one initializer {@code tensorProto} (a TensorProto's bytes). */
    static byte[] modelOf(byte[] tensorProto) throws IOException {
        ByteArrayOutputStream graph = new ByteArrayOutputStream();
        CodedOutputStream g = CodedOutputStream.newInstance(graph);
        g.writeByteArray(5, tensorProto);
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

    private static final BertConfig TINY = BertConfig.of(10, 8, 2, 2, 16);

    private static byte[] tiny(Consumer<TinyOnnx> spoil) throws IOException {
        TinyOnnx g = TinyOnnx.tiny(TINY, false, 2, 4, 1e-12f, "Erf");
        spoil.accept(g);
        return g.bytes();
    }

    private static void replace(TinyOnnx g, String name, java.util.function.UnaryOperator<TinyOnnx.T> edit) {
        for (int i = 0; i < g.inits.size(); i++) if (g.inits.get(i).name().equals(name)) g.inits.set(i, edit.apply(g.inits.get(i)));
    }

    @Test
    void aTinyExportImports() throws IOException {
        Path f = dir.resolve("ok.onnx");
        Files.write(f, tiny(g -> {}));
        assertEquals(2, OnnxBertImporter.importModel(f, dir.resolve("ok")).numHiddenLayers());
    }

    /** The depth came from the highest layer index named: one 4-byte initializer built a model of hundreds of layers. */
    @Test
    void layersMustBeZeroToLMinusOneEachComplete() throws IOException {
        IOException e = importFails(tiny(g -> g.inits.add(new TinyOnnx.T("encoder.layer.300.x.weight", 1, new long[] {1},
                TinyOnnx.f32(new float[] {0}), null, null))));
        assertTrue(e.getMessage().contains("300"), e.getMessage());
        assertTrue(e.getMessage().length() < 2000, "message of " + e.getMessage().length() + " chars");
        e = importFails(tiny(g -> g.inits.add(new TinyOnnx.T("encoder.layer.99999999999.x.weight", 1, new long[] {1},
                TinyOnnx.f32(new float[] {0}), null, null))));
        assertTrue(e.getMessage().contains("99999999999"), e.getMessage());
        e = importFails(tiny(g -> g.inits.removeIf(t -> t.name().equals("encoder.layer.1.output.LayerNorm.bias"))));
        assertTrue(e.getMessage().contains("encoder.layer.1.output.LayerNorm.bias"), e.getMessage());
        e = importFails(tiny(g -> replace(g, "encoder.layer.1.output.LayerNorm.bias",
                t -> new TinyOnnx.T(t.name(), 1, new long[] {4}, TinyOnnx.f32(new float[4]), null, null))));
        assertTrue(e.getMessage().contains("encoder.layer.1.output.LayerNorm.bias"), e.getMessage());
    }

    /** Shapes the config is read from: a 1-D embedding, a MatMul weight without data, dims whose product overflows. */
    @Test
    void malformedShapesAreNamedIOExceptions() throws IOException {
        IOException e = importFails(tiny(g -> replace(g, "embeddings.word_embeddings.weight",
                t -> new TinyOnnx.T(t.name(), 1, new long[] {80}, t.raw(), null, null))));
        assertTrue(e.getMessage().contains("embeddings.word_embeddings.weight"), e.getMessage());
        e = importFails(tiny(g -> replace(g, "onnx::MatMul_0", t -> new TinyOnnx.T(t.name(), 1, t.dims(), null, null, null))));
        assertTrue(e.getMessage().contains("onnx::MatMul_0"), e.getMessage());
        e = importFails(modelWithInitializer("embeddings.LayerNorm.bias", new long[] {1L << 40, 1L << 40}, 0));
        assertTrue(e.getMessage().contains("embeddings.LayerNorm.bias"), e.getMessage());
    }

    /** List-form data went into a List<Double> (~24 bytes a value) and was compared with the dims only at the end. */
    @Test
    void listDataLongerThanItsDimsStopsAtOnce() throws IOException {
        int bytes = 16 << 20;
        ByteArrayOutputStream tensor = new ByteArrayOutputStream();
        CodedOutputStream t = CodedOutputStream.newInstance(tensor);
        t.writeInt64(1, 1);
        t.writeInt32(2, 7);
        t.writeString(8, "embeddings.LayerNorm.bias");
        t.writeTag(7, 2);
        t.writeUInt32NoTag(bytes); // packed int64_data: 16 M zeros
        t.flush();
        tensor.write(new byte[bytes]);
        byte[] file = modelOf(tensor.toByteArray());
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long before = threads.getCurrentThreadAllocatedBytes();
        IOException e = importFails(file);
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertTrue(e.getMessage().contains("embeddings.LayerNorm.bias"), e.getMessage());
        // Reading the file is one copy of it; the values must not cost more.
        assertTrue(allocated < 3L * file.length, "allocated " + allocated + " bytes for a file of " + file.length);
    }
}
