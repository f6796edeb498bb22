package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An IDX file rewritten in place while it is read, as {@code cp new old} does (truncate, then
 * write): every read gives one version whole or an {@link java.io.IOException}, never the head of one
 * and the tail of the other (reading through a stream did).
 */
class IdxChangeTest {

    @TempDir
    Path dir;

    @Test
    void aFileRewrittenWhileItIsReadGivesOneVersionOrAnIOException() throws Exception {
        int n = 2 << 20;
        byte[] one = new byte[8 + n];
        ByteBuffer.wrap(one).putInt(0x0801).putInt(n);
        java.util.Arrays.fill(one, 8, one.length, (byte) 1);
        byte[] two = one.clone();
        int half = one.length / 2;
        java.util.Arrays.fill(two, half, two.length, (byte) 2);
        Files.write(dir.resolve("one"), one);
        Files.write(dir.resolve("two"), two);
        Path file = dir.resolve("data-idx1-ubyte");
        Files.write(file, one);
        try (Tensor a = Idx.read(dir.resolve("one")); Tensor b = Idx.read(dir.resolve("two"))) {
            assertFalse(a.equal(b));
            InPlaceRewrites.Counts counts = InPlaceRewrites.run(file, new byte[][] {one, two}, half, 2, () -> {
                try (Tensor t = Idx.read(file)) {
                    return t.equal(a) || t.equal(b);
                }
            });
            System.out.println("IDX reads: " + counts.whole() + " whole, " + counts.refused() + " refused");
        }
    }
}
