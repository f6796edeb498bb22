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
                .getMessage().contains("magic"));
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 7, 1, 0, 0, 0, 1, 0}), "x"))
                .getMessage().contains("unknown IDX element type"));
        assertTrue(assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 1, 0, 0, 0, 5, 1, 2}), "x"))
                .getMessage().contains("truncated"));
    }

    /** A header declaring 1.6 GB over a few bytes: refused before anything that size is allocated (plain, gzipped, stream). */
    @Test
    void aHeaderDeclaringMoreThanTheFileHoldsIsRefusedBeforeAllocating() throws IOException {
        byte[] lying = {0, 0, 8, 2, 0, 0, (byte) 0x9c, 0x40, 0, 0, (byte) 0x9c, 0x40, 1, 2, 3};
        Path plain = dir.resolve("lying-idx3-ubyte");
        Files.write(plain, lying);
        // Caught as Throwable: an OutOfMemoryError (allocating what the header says) must fail the test, not escape it.
        IOException e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(plain)));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("holds 3"), e.getMessage());
        Path gz = dir.resolve("lying-idx3-ubyte.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(lying);
        }
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(gz)));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        e = assertInstanceOf(IOException.class, thrown(() -> Idx.read(new ByteArrayInputStream(lying), "mem")));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        // Dimensions that overflow, and a header cut short, are IOExceptions too.
        byte[] overflow = {0, 0, 0x0E, 3, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff,
            (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff};
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(overflow), "mem"));
        assertThrows(IOException.class, () -> Idx.read(new ByteArrayInputStream(new byte[] {0, 0, 8, 2, 0, 0}), "mem"));
    }

    private static Throwable thrown(org.junit.jupiter.api.function.Executable body) {
        try {
            body.execute();
            return null;
        } catch (Throwable t) {
            return t;
        }
    }
}
