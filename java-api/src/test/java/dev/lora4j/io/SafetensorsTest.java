package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors format: bit-exact round trips, hand-built files, and every malformed case refused. */
class SafetensorsTest {

    @TempDir
    Path dir;

    @Test
    void roundTripIsBitExactForEveryDtypeWithMetadata() throws IOException {
        Torch.manualSeed(1);
        try (TensorScope s = TensorScope.open()) {
            Map<String, Tensor> in = new LinkedHashMap<>();
            for (DType d : DType.values()) in.put("t_" + d, Tensor.randn(3, 5).mul(10).to(d));
            in.put("scalar", Tensor.scalar(7, DType.FLOAT32));
            in.put("empty", Tensor.zeros(0, 4));
            Path f = dir.resolve("all.safetensors");
            Safetensors.write(f, in, Map.of("format", "pt"));
            try (Safetensors.Contents c = Safetensors.read(f)) {
                assertEquals(List.copyOf(in.keySet()), List.copyOf(c.tensors().keySet()));
                assertEquals(Map.of("format", "pt"), c.metadata());
                for (var e : in.entrySet()) {
                    Tensor back = c.tensors().get(e.getKey());
                    assertEquals(e.getValue().dtype(), back.dtype(), e.getKey());
                    assertArrayEquals(e.getValue().shape(), back.shape(), e.getKey());
                    assertArrayEquals(e.getValue().contiguous().data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                            back.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), e.getKey());
                }
            }
            try (var files = Files.list(dir)) {
                assertEquals(List.of(f), files.toList(), "no temporary file is left behind");
            }
        }
    }

    /** Builds a file from a header string and data bytes, as the specification lays it out. */
    private Path file(String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        Path f = Files.createTempFile(dir, "t", ".safetensors");
        Files.write(f, b.array());
        return f;
    }

    private static byte[] floats(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) b.putFloat(x);
        return b.array();
    }

    @Test
    void readsAHandBuiltFile() throws IOException {
        Path f = file("{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", floats(1.5f, -2f, 3f));
        try (Safetensors.Contents c = Safetensors.read(f)) {
            assertArrayEquals(new float[] {1.5f, -2f}, c.tensors().get("a").toFloatArray());
            assertArrayEquals(new float[] {3f}, c.tensors().get("b").toFloatArray());
            assertEquals("pt", c.metadata().get("format"));
        }
    }

    private void refused(String why, Path f, String expected) {
        long before = Torch.reclaimedTensorCount();
        IOException e = assertThrows(IOException.class, () -> Safetensors.read(f), why);
        assertTrue(e.getMessage().contains(expected), why + ": " + e.getMessage());
        assertEquals(before, Torch.reclaimedTensorCount());
    }

    @Test
    void malformedFilesAreRefusedWithClearMessages() throws IOException {
        String ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        refused("empty file", Files.write(dir.resolve("empty"), new byte[3]), "truncated");
        byte[] shortHeader = new byte[12];
        ByteBuffer.wrap(shortHeader).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).put("{}  ".getBytes(StandardCharsets.UTF_8));
        refused("header length past the end", Files.write(dir.resolve("short"), shortHeader), "does not fit");
        refused("data missing", file(ok, new byte[0]), "past the data");
        byte[] big = new byte[16];
        ByteBuffer.wrap(big).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40);
        refused("absurd header length", Files.write(dir.resolve("big"), big), "does not fit");
        refused("truncated data", file(ok, floats(1)), "past the data");
        refused("overlap", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", floats(1, 2)), "overlaps");
        refused("hole", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", floats(1, 2)), "belong to no tensor");
        refused("trailing bytes", file(ok, floats(1, 2, 3)), "belong to no tensor");
        refused("shape×dtype vs range", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", floats(1, 2)), "needs 12 bytes");
        refused("unknown dtype", file("{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", new byte[2]), "unknown safetensors dtype");
        refused("bad JSON", file("{\"a\":{\"dtype\":\"F32\",", floats(1, 2)), "bad JSON");
        refused("duplicate names", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", floats(1, 2)), "Duplicate");
        refused("negative offsets", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", new byte[0]), "bad data_offsets");
        refused("negative shape", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", floats(1)), "bad shape");
        refused("not an object", file("[1,2]", new byte[0]), "not a JSON object");
        refused("metadata not strings", file("{\"__metadata__\":{\"n\":1}}", new byte[0]), "not a string");
    }

    /**
     * Text after the header's JSON object is refused, as Hugging Face's reader (serde_json's
     * from_str) refuses it, and the message quotes none of it; JSON whitespace after the object,
     * the spaces that pad a header to alignment among it, stays accepted.
     */
    @Test
    void textAfterTheHeadersJsonObjectIsRefusedButPaddingIsNot() throws IOException {
        String ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        for (String tail : new String[] {" {\"u\":\"sk_live_SECRET\"}", "sk_live_SECRET", "  ]", "}", " 1", "\u000b", "\u2003", "\u00a0", " \u0000"}) {
            IOException e = assertThrows(IOException.class, () -> Safetensors.read(file(ok + tail, floats(1, 2))), tail);
            assertTrue(e.getMessage().contains("bad JSON header"), e.getMessage());
            assertFalse(e.getMessage().contains("sk_live"), e.getMessage());
        }
        for (String tail : new String[] {"", "    ", "       ", " \n\t\r "}) {
            try (Safetensors.Contents c = Safetensors.read(file(ok + tail, floats(1, 2)))) {
                assertArrayEquals(new float[] {1, 2}, c.tensors().get("a").toFloatArray());
            }
        }
    }

    /**
     * A header that is not UTF-8 is refused, as the specification and Hugging Face's reader
     * require (decoded leniently, two different byte names would both read as "a\uFFFD").
     */
    @Test
    void aHeaderThatIsNotUtf8IsRefused() throws IOException {
        byte[] h = "{\"a?\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(StandardCharsets.UTF_8);
        h[3] = (byte) 0xff;
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(floats(1));
        refused("invalid UTF-8 in a name", Files.write(dir.resolve("latin1"), b.array()), "UTF-8");
    }

    /** A saved file gets the permissions the umask gives any new file (not owner-only, as a temp file would). */
    @Test
    void savedFilesFollowTheUmask() throws IOException {
        Path probe = Files.createFile(dir.resolve("probe"));
        Path f = dir.resolve("perm.safetensors");
        try (TensorScope s = TensorScope.open()) {
            Safetensors.write(f, Map.of("a", Tensor.zeros(2)));
        }
        assertEquals(Files.getPosixFilePermissions(probe), Files.getPosixFilePermissions(f));
        try (var listing = Files.list(dir)) {
            assertEquals(List.of("perm.safetensors", "probe"), listing.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no temporary file is left behind");
        }
    }

    /**
     * What the writer accepts its own reader (and Hugging Face's) reads: a metadata value or key
     * that is null, or a name with a lone surrogate, is refused before any file exists; a long
     * metadata string (Jackson's default limit refused 20 MB, HF takes a 100 MB header) and a
     * 250-character file name (the temporary name used to exceed 255 bytes) work.
     */
    @Test
    void whatTheWriterWritesItsReaderReads() throws IOException {
        try (TensorScope s = TensorScope.open()) {
            Map<String, Tensor> one = Map.of("a", Tensor.ones(2));
            Map<String, String> nullValue = new java.util.HashMap<>();
            nullValue.put("k", null);
            Path f = dir.resolve("x.safetensors");
            assertThrows(IllegalArgumentException.class, () -> Safetensors.write(f, one, nullValue));
            assertThrows(IllegalArgumentException.class, () -> Safetensors.write(f, Map.of("bad\uD800", Tensor.ones(1))));
            assertFalse(Files.exists(f));
            assertEquals(0, Files.list(dir).count(), "no temporary file left");
            String log = "x".repeat(30_000_000);
            Safetensors.write(f, one, Map.of("log", log));
            try (var c = Safetensors.read(f)) {
                assertEquals(log, c.metadata().get("log"));
            }
            Path longName = dir.resolve("a".repeat(238) + ".safetensors");
            Safetensors.write(longName, one);
            try (var c = Safetensors.read(longName)) {
                assertArrayEquals(new float[] {1, 1}, c.tensors().get("a").toFloatArray());
            }
        }
    }

    /** A tensor over 2 GiB is written in pieces (one ByteBuffer holds at most 2 GiB: the write used to fail). */
    @Test
    void aTensorOverTwoGibRoundTrips() throws IOException {
        long n = (1L << 31) + 16;
        Path f = dir.resolve("big.safetensors");
        try (Tensor big = Tensor.zeros(DType.UINT8, n)) {
            try (Tensor last = big.narrow(0, n - 3, 3)) {
                last.fill_(7);
            }
            Safetensors.write(f, Map.of("big", big));
        }
        assertEquals(8 + 64 + n, Files.size(f), 64);
        try (var c = Safetensors.read(f); Tensor tail = c.tensors().get("big").narrow(0, n - 4, 4)) {
            assertArrayEquals(new long[] {n}, c.tensors().get("big").shape());
            assertArrayEquals(new long[] {0, 7, 7, 7}, tail.toLongArray());
        } finally {
            Files.deleteIfExists(f);
        }
    }
}
