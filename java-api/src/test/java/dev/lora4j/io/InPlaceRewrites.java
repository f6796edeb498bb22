package dev.lora4j.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A file rewritten in place while this thread reads it, as {@code cp new old} does: a writer
 * thread cuts the file at byte {@code keep} and writes back the tail of the next version (so
 * the file is whole most of the time and reads often meet a cut or a rewrite), over and over.
 * Every read must give one version whole or an {@link IOException}.
 */
final class InPlaceRewrites {

    private InPlaceRewrites() {}

    /** How the reads went. */
    record Counts(int whole, int refused) {}

    /** One read of the file: whether it gave one of the versions whole. */
    @FunctionalInterface
    interface Read {
        boolean wholeVersion() throws IOException;
    }

    /**
     * Reads for {@code seconds} while {@code file} (holding {@code versions[0]}) is rewritten;
     * versions have the same length and the same first {@code keep} bytes.
     *
     * @throws AssertionError at the first read that mixes versions
     */
    static Counts run(Path file, byte[][] versions, int keep, double seconds, Read read) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Exception> writerFailed = new AtomicReference<>();
        Thread writer = Thread.ofPlatform().start(() -> {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                for (int i = 1; !stop.get(); i++) {
                    ch.truncate(keep);
                    byte[] v = versions[i % versions.length];
                    ByteBuffer buf = ByteBuffer.wrap(v, keep, v.length - keep);
                    for (long pos = keep; buf.hasRemaining(); ) pos += ch.write(buf, pos);
                    Thread.sleep(0, 300_000);
                }
            } catch (IOException | InterruptedException e) {
                writerFailed.set(e);
            }
        });
        long end = System.nanoTime() + (long) (seconds * 1e9);
        int whole = 0;
        int refused = 0;
        try {
            while (System.nanoTime() < end) {
                try {
                    if (!read.wholeVersion()) throw new AssertionError("a read mixed two versions of the file (after " + whole + " whole reads)");
                    whole++;
                } catch (IOException e) {
                    refused++;
                }
            }
        } finally {
            stop.set(true);
            writer.join();
        }
        if (writerFailed.get() != null) throw writerFailed.get();
        return new Counts(whole, refused);
    }
}
