package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An IDX file rewritten in place while it is read, as {@code cp new old} does (truncate, then
 * write): every read gives one version whole or an {@link IOException}, never the head of one
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
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> writerFailed = new AtomicReference<>();
        int whole = 0;
        int refused = 0;
        try (Tensor a = Idx.read(dir.resolve("one")); Tensor b = Idx.read(dir.resolve("two"))) {
            assertFalse(a.equal(b));
            Thread writer = Thread.ofPlatform().start(() -> {
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                    for (int i = 1; !stop.get(); i++) {
                        ch.truncate(half);
                        byte[] v = i % 2 == 0 ? one : two;
                        ByteBuffer buf = ByteBuffer.wrap(v, half, v.length - half);
                        for (long pos = half; buf.hasRemaining(); ) pos += ch.write(buf, pos);
                        Thread.sleep(0, 300_000);
                    }
                } catch (IOException | InterruptedException | RuntimeException e) {
                    writerFailed.set(e);
                }
            });
            long end = System.nanoTime() + 2_000_000_000L;
            try {
                while (System.nanoTime() < end) {
                    try (Tensor t = Idx.read(file)) {
                        assertTrue(t.equal(a) || t.equal(b), "a read mixed two versions of the file");
                        whole++;
                    } catch (IOException e) {
                        refused++;
                    }
                }
            } finally {
                stop.set(true);
                writer.join();
            }
        }
        assertNull(writerFailed.get());
        System.out.println("IDX reads: " + whole + " whole, " + refused + " refused");
    }
}
