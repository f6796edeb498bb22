package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The IDX format: hand-built bytes, round trips (plain and gzipped), malformed files. */
class IdxTest {

    @TempDir
    Path dir;

    @Test
    void readsHandBuiltUbyteAndBigEndianInts() throws IOException {
        byte[] ubyte = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, (byte) 255};
        try (Tensor t = Idx.read(new ByteArrayInputStream(ubyte), "mem")) {
            assertEquals(DType.UINT8, t.dtype());
            assertArrayEquals(new long[] {2, 3}, t.shape());
            assertArrayEquals(new long[] {1, 2, 3, 4, 5, 255}, t.toLongArray());
        }
        byte[] ints = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 0, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xfe};
        try (Tensor t = Idx.read(new ByteArrayInputStream(ints), "mem")) {
            assertArrayEquals(new int[] {256, -2}, t.toIntArray());
        }
    }

    @Test
    void roundTripsPlainAndGzipped() throws IOException {
        try (TensorScope s = TensorScope.open()) {
            for (DType d : new DType[] {DType.UINT8, DType.INT32, DType.FLOAT32, DType.FLOAT64, DType.INT16}) {
                Tensor t = Tensor.arange(0, 24, 1, DType.FLOAT64).reshape(2, 3, 4).mul(3).to(d);
                Path plain = dir.resolve(d + ".idx");
                Idx.write(t, plain);
                assertTrue(Idx.read(plain).equal(t), d.name());
                Path gz = dir.resolve(d + ".idx.gz");
                try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
                    out.write(Files.readAllBytes(plain));
                }
                assertTrue(Idx.read(gz).equal(t), d + " gzipped");
            }
        }
    }

    @Test
    void malformedFilesAreRefused() throws IOException {
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {1, 2}), "x"))
                .getMessage().contains("not an IDX file"));
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {1, 0, 8, 1}), "x"))
                .getMessage().contains("not an IDX file"));
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 7, 1, 0, 0, 0, 1, 0}), "x"))
                .getMessage().contains("unknown IDX element type"));
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 1, 0, 0, 0, 5, 1, 2}), "x"))
                .getMessage().contains("truncated"));
    }

    /**
     * A header declaring 1.6 GB over a few bytes, with the size limit lifted: refused before
     * anything that size is allocated (plain, gzipped, stream).
     */
    @Test
    void aHeaderDeclaringMoreThanTheFileHoldsIsRefusedBeforeAllocating() throws IOException {
        byte[] lying = {0, 0, 8, 2, 0, 0, (byte) 0x9c, 0x40, 0, 0, (byte) 0x9c, 0x40, 1, 2, 3};
        Path plain = dir.resolve("lying-idx3-ubyte");
        Files.write(plain, lying);
        // Caught as Throwable: an OutOfMemoryError (allocating what the header says) must fail the test, not escape it.
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(plain, Long.MAX_VALUE)));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("holds 3"), e.getMessage());
        Path gz = dir.resolve("lying-idx3-ubyte.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(lying);
        }
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz, Long.MAX_VALUE)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(lying), "mem", Long.MAX_VALUE)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        // Dimensions that overflow, and a header cut short, are IOExceptions too.
        byte[] overflow = {0, 0, 0x0E, 3, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff,
            (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff};
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(overflow), "mem"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 2, 0, 0}), "mem"));
    }

    /**
     * A gzip bomb: 1.8 MB whose header declares 1.9e9 uint8 and whose members really inflate to
     * that many bytes. Refused by the size limit before the data is read (reading it used to throw
     * OutOfMemoryError); a caller who expects larger tensors raises the limit.
     */
    @Test
    void aGzipBombIsRefusedByTheSizeLimitWhichTheCallerCanRaise() throws IOException {
        byte[] zeros = new byte[16 << 20];
        java.io.ByteArrayOutputStream member = new java.io.ByteArrayOutputStream();
        try (OutputStream out = new GZIPOutputStream(member)) {
            out.write(zeros);
        }
        int members = 113; // 113 * 16 MiB = 1.896e9 bytes
        Path bomb = dir.resolve("bomb-idx1-ubyte.gz");
        try (OutputStream out = Files.newOutputStream(bomb)) {
            // Concatenated gzip members are one stream (RFC 1952), as GZIPInputStream reads them.
            out.write(gzip(new byte[] {0, 0, 8, 1, (byte) 0x71, 0, 0, 0}));
            for (int i = 0; i < members; i++) out.write(member.toByteArray());
        }
        assertTrue(Files.size(bomb) < 4 << 20, "a few MB on disk: " + Files.size(bomb));
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(bomb)));
        assertTrue(e.getMessage().contains("1895825408 bytes") && e.getMessage().contains("limit"), e.getMessage());
    }

    /** The same limit for a plain file and a stream; a raised limit reads them. */
    @Test
    void theSizeLimitCanBeRaised() throws IOException {
        byte[] small = new byte[8 + 4096];
        java.nio.ByteBuffer.wrap(small).putInt(0x0801).putInt(4096);
        Path plain = dir.resolve("small-idx1-ubyte");
        Files.write(plain, small);
        IOException e = assertThrows(IOException.class, () -> Idx.read(plain, 4095));
        assertTrue(e.getMessage().contains("4096 bytes") && e.getMessage().contains("limit of 4095"), e.getMessage());
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(gzip(small)), "mem", 4095));
        try (Tensor t = Idx.read(plain, 4096); Tensor s = Idx.read(new java.util.zip.GZIPInputStream(new ByteArrayInputStream(gzip(small))), "mem", 4096)) {
            assertArrayEquals(new long[] {4096}, t.shape());
            assertTrue(t.equal(s));
        }
        assertThrows(IllegalArgumentException.class, () -> Idx.read(plain, -1));
    }

    /** A header declaring fewer values than the file holds: refused, plain, gzipped (inside the stream) and as a stream. */
    @Test
    void bytesAfterTheDeclaredDataAreRefused() throws IOException {
        byte[] eight = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8};
        Path plain = dir.resolve("long-idx1-ubyte");
        Files.write(plain, eight);
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(plain)));
        assertTrue(e.getMessage().contains("4 bytes after"), e.getMessage());
        Path gz = dir.resolve("long-idx1-ubyte.gz");
        Files.write(gz, gzip(eight));
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz)));
        assertTrue(e.getMessage().contains("after"), e.getMessage());
        // The extra bytes in a second gzip member: still the same decompressed stream.
        try (OutputStream out = Files.newOutputStream(gz)) {
            out.write(gzip(java.util.Arrays.copyOf(eight, 12)));
            out.write(gzip(new byte[] {9}));
        }
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz)));
        assertTrue(e.getMessage().contains("after"), e.getMessage());
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(eight), "mem")));
        assertTrue(e.getMessage().contains("after"), e.getMessage());
        // One byte too many is as wrong as four.
        Files.write(plain, java.util.Arrays.copyOf(eight, 13));
        assertThrows(IOException.class, () -> Idx.read(plain));
        Files.write(plain, java.util.Arrays.copyOf(eight, 12));
        try (Tensor t = Idx.read(plain)) {
            assertArrayEquals(new long[] {1, 2, 3, 4}, t.toLongArray());
        }
    }

    /** Headers that cannot describe a tensor, and data cut short, each give an IOException that says which. */
    @Test
    void badHeadersAndTruncatedDataAreIOExceptions() throws IOException {
        // A product of sizes past Long.MAX_VALUE (2^32-1 cubed), and one past it only in bytes (float64).
        byte[] huge = {0, 0, 8, 3, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(huge), "mem")));
        assertTrue(e.getMessage().contains("overflow"), e.getMessage());
        byte[] hugeBytes = {0, 0, 0x0E, 2, -1, -1, -1, -1, 0x7f, -1, -1, -1};
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(hugeBytes), "mem")));
        assertTrue(e.getMessage().contains("overflow"), e.getMessage());
        // Zero dimensions.
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 0, 1, 2}), "mem")));
        assertTrue(e.getMessage().contains("zero dimensions"), e.getMessage());
        // The most dimensions the format's byte can say (255) read, a header cut short within them is refused.
        byte[] many = new byte[4 + 4 * 255 + 2];
        many[2] = 8;
        many[3] = (byte) 255;
        for (int i = 0; i < 255; i++) many[4 + 4 * i + 3] = 1;
        many[7] = 2;
        try (Tensor t = Idx.read(new ByteArrayInputStream(many), "mem")) {
            assertEquals(255, t.dim());
            assertEquals(2, t.numel());
        }
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(java.util.Arrays.copyOf(many, 4 + 4 * 254)), "mem")));
        assertTrue(e.getMessage().contains("truncated IDX header (255 dimensions"), e.getMessage());
        // A size of 0 is an empty tensor (an empty data set), with no data after the header.
        try (Tensor t = Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 3}), "mem")) {
            assertArrayEquals(new long[] {0, 3}, t.shape());
        }
        // Data cut short: plain, gzipped, a gzip stream cut in the middle, float32 cut inside an element.
        byte[] ints = {0, 0, 0x0C, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0};
        Path plain = dir.resolve("short-idx1-int");
        Files.write(plain, ints);
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(plain)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        Path gz = dir.resolve("short-idx1-int.gz");
        Files.write(gz, gzip(ints));
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        byte[] whole = new byte[8 + 100_000];
        java.nio.ByteBuffer.wrap(whole).putInt(0x0801).putInt(100_000);
        byte[] noise = new byte[100_000];
        new java.util.Random(1).nextBytes(noise);
        System.arraycopy(noise, 0, whole, 8, noise.length);
        byte[] zipped = gzip(whole);
        Files.write(gz, java.util.Arrays.copyOf(zipped, zipped.length / 2));
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    /** A file that is no IDX file: the message says so without quoting its bytes (it may be a secret). */
    @Test
    void aFileThatIsNoIdxFileIsNotQuoted() throws IOException {
        Path secret = dir.resolve("secret");
        Files.writeString(secret, "sk_live_SUPERSECRET");
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(secret)));
        assertTrue(e.getMessage().contains("not an IDX file"), e.getMessage());
        String firstBytes = Integer.toHexString(java.nio.ByteBuffer.wrap("sk_l".getBytes(java.nio.charset.StandardCharsets.US_ASCII)).getInt());
        assertFalse(e.getMessage().contains(firstBytes), e.getMessage());
    }

    private static byte[] gzip(byte[] bytes) throws IOException {
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        try (OutputStream out = new GZIPOutputStream(b)) {
            out.write(bytes);
        }
        return b.toByteArray();
    }

    private static Throwable thrown(org.junit.jupiter.api.function.Executable body) {
        try {
            body.execute();
            return null;
        } catch (Throwable t) {
            return t;
        }
    }

    /** A refused write leaves the old file whole, and a link at the destination is replaced, not written through. */
    @Test
    void writesAreAllOrNothingAndDoNotFollowLinks(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path f = dir.resolve("x.idx");
        try (Tensor good = Tensor.of(new float[] {1, 2, 3}, 3); Tensor huge = Tensor.zeros(DType.UINT8, 0, 5_000_000_000L)) {
            Idx.write(good, f);
            byte[] before = java.nio.file.Files.readAllBytes(f);
            assertThrows(IllegalArgumentException.class, () -> Idx.write(huge, f));
            assertArrayEquals(before, java.nio.file.Files.readAllBytes(f), "the old file is whole");
            java.nio.file.Path victim = dir.resolve("victim.txt");
            java.nio.file.Files.writeString(victim, "keep me");
            java.nio.file.Path link = dir.resolve("link.idx");
            java.nio.file.Files.createSymbolicLink(link, victim);
            Idx.write(good, link);
            assertEquals("keep me", java.nio.file.Files.readString(victim));
            assertFalse(java.nio.file.Files.isSymbolicLink(link));
            assertArrayEquals(before, java.nio.file.Files.readAllBytes(link));
            try (var stream = java.nio.file.Files.list(dir)) {
                assertEquals(3, stream.count(), "no temporary file left");
            }
        }
    }
}
