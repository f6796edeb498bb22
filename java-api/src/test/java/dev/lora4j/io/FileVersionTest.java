package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@link FileVersion#readStable} accepts: a read during which the file was replaced by a
 * rename came whole from one version (the renamed file is complete before it is published), so
 * it is kept; a read during which the same file was written in place is read again, and refused
 * when that keeps happening.
 */
class FileVersionTest {

    @TempDir
    Path dir;

    /** A value the reader returns; closing is counted, as readStable closes the reads it discards. */
    private record Read(String text, AtomicInteger closed) implements AutoCloseable {
        @Override
        public void close() {
            closed.incrementAndGet();
        }
    }

    private static String read(java.nio.channels.FileChannel ch) throws IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) ch.size());
        while (b.hasRemaining() && ch.read(b, b.position()) > 0) {}
        return new String(b.array(), 0, b.position(), java.nio.charset.StandardCharsets.UTF_8);
    }

    private static void replaceByRename(Path file, String text) throws IOException {
        Path tmp = file.resolveSibling("." + file.getFileName() + ".tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    @Test
    void aFileReplacedByRenameDuringEveryReadIsReadOnceAndKept() throws Exception {
        Path file = dir.resolve("f");
        Files.writeString(file, "v0");
        AtomicInteger reads = new AtomicInteger(), closed = new AtomicInteger();
        Read r = FileVersion.readStable(file, 3, ch -> {
            String text = read(ch);
            replaceByRename(file, "v" + reads.incrementAndGet()); // a save lands during every read
            return new Read(text, closed);
        });
        assertEquals("v0", r.text(), "the whole version that was read");
        assertEquals(1, reads.get(), "a rename does not make the read start again");
        assertEquals(0, closed.get());
    }

    @Test
    void aFileWrittenInPlaceDuringEveryReadIsReadAgainThenRefused() throws Exception {
        Path file = dir.resolve("g");
        Files.writeString(file, "v0");
        AtomicInteger reads = new AtomicInteger(), closed = new AtomicInteger();
        IOException e = assertThrows(IOException.class, () -> FileVersion.readStable(file, 3, ch -> {
            String text = read(ch);
            // same inode, other size: what a torn read would have seen part of
            Files.writeString(file, "v" + "x".repeat(reads.incrementAndGet()), StandardOpenOption.TRUNCATE_EXISTING);
            return new Read(text, closed);
        }));
        assertTrue(e.getMessage().contains("changed while it was read, 3 times"), e.getMessage());
        assertEquals(3, reads.get());
        assertEquals(3, closed.get(), "every discarded read is closed");
    }

    @Test
    void aFileWrittenInPlaceOnceIsReadAgainAndTheSecondReadKept() throws Exception {
        Path file = dir.resolve("h");
        Files.writeString(file, "v0");
        AtomicInteger reads = new AtomicInteger(), closed = new AtomicInteger();
        Read r = FileVersion.readStable(file, 3, ch -> {
            String text = read(ch);
            if (reads.incrementAndGet() == 1) Files.writeString(file, "v1-longer", StandardOpenOption.TRUNCATE_EXISTING);
            return new Read(text, closed);
        });
        assertEquals("v1-longer", r.text());
        assertEquals(2, reads.get());
        assertEquals(1, closed.get());
    }

    /**
     * Through a symbolic link, as in Hugging Face's hub cache (snapshots/…/model.safetensors →
     * blobs/…): the link re-pointed during every read is a replacement (the read is kept), the
     * file it names written in place is a change (read again, then refused).
     */
    @Test
    void aLinkIsFollowedAndItsTargetJudgedAsTheFileItself() throws Exception {
        Path v0 = dir.resolve("blob0"), link = dir.resolve("model");
        Files.writeString(v0, "v0");
        Files.createSymbolicLink(link, v0);
        AtomicInteger reads = new AtomicInteger(), closed = new AtomicInteger();
        Read r = FileVersion.readStable(link, 3, ch -> {
            String text = read(ch);
            Path next = dir.resolve("blob" + reads.incrementAndGet()), tmp = dir.resolve("model.tmp");
            Files.writeString(next, "v" + reads.get());
            Files.createSymbolicLink(tmp, next);
            Files.move(tmp, link, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING); // re-pointed
            return new Read(text, closed);
        });
        assertEquals("v0", r.text());
        assertEquals(1, reads.get());

        Path target = Files.readSymbolicLink(link);
        reads.set(0);
        IOException e = assertThrows(IOException.class, () -> FileVersion.readStable(link, 3, ch -> {
            String text = read(ch);
            Files.writeString(target, "w" + "x".repeat(reads.incrementAndGet()), StandardOpenOption.TRUNCATE_EXISTING);
            return new Read(text, closed);
        }));
        assertTrue(e.getMessage().contains("changed while it was read"), e.getMessage());
        assertEquals(3, reads.get());
    }
}
