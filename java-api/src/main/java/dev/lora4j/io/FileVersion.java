package dev.lora4j.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * What identifies one version of a file: device, inode, size, modification and change times
 * (nanoseconds where the file system keeps them). Taken before and after a read, equal
 * versions mean no write touched the file in between, as far as a reader can tell: on Linux
 * 6.13 and later a change that follows a look at the times gets a fresh time stamp, so any
 * write that starts after the first look is seen; older kernels' coarse time stamps can hide a
 * change of the same size within one clock tick, and a single write already under way when
 * the read starts is invisible to every reader. Access times are left out (reading changes
 * them).
 *
 * <p>When the path names another file after the read than before, that file was replaced
 * (renamed over, or deleted and created again). The read came from the file that was opened,
 * which {@link #readStable} makes sure is the one seen before, and which a replacement leaves as
 * it was. So a reader keeps what it read while a writer publishes new versions by renaming, as
 * lora4j's writers do, however often that happens. Immutable.
 */
record FileVersion(List<Object> parts) {

    static FileVersion of(Path file) throws IOException {
        try {
            Map<String, Object> a = Files.readAttributes(file, "unix:dev,ino,size,lastModifiedTime,ctime");
            return new FileVersion(Arrays.asList(a.get("dev"), a.get("ino"), a.get("size"), a.get("lastModifiedTime"), a.get("ctime")));
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
            return new FileVersion(Arrays.asList(a.fileKey(), a.size(), a.lastModifiedTime()));
        }
    }

    /** Whether both versions are of one file (same device and inode, or file key), whatever its contents. */
    boolean sameFile(FileVersion other) {
        int n = parts.get(0) instanceof Long ? 2 : 1; // dev + ino, or the file key
        return parts.subList(0, n).equals(other.parts.subList(0, n)) && parts.get(0) != null;
    }

    /**
     * Opens {@code file} and reads it with {@code read}; reads again while the file that was
     * opened changed during the read, at most {@code attempts} times, then throws. A file that
     * was replaced during the read (see the type's comment) does not count as changed.
     */
    static <T extends AutoCloseable> T readStable(Path file, int attempts, Reader<T> read) throws IOException {
        for (int attempt = 1; ; attempt++) {
            FileVersion before = of(file);
            T value = null;
            IOException failure = null;
            boolean whole;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                // the channel is the file seen before unless the path changed in this instant
                if (of(file).equals(before)) {
                    try {
                        value = read.read(ch);
                    } catch (IOException e) {
                        failure = e;
                    }
                    FileVersion after = of(file);
                    whole = after.equals(before) || (!after.sameFile(before) && ch.size() == before.size());
                } else {
                    whole = false;
                }
            }
            if (whole) {
                if (failure != null) throw failure;
                return value;
            }
            if (value != null) {
                try {
                    value.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
            if (attempt == attempts) {
                if (failure != null) throw failure;
                throw new IOException(file + ": the file changed while it was read, " + attempts
                        + " times (write it to a temporary file and rename it into place, as lora4j's writers do)");
            }
        }
    }

    private long size() {
        return ((Number) parts.get(parts.get(0) instanceof Long ? 2 : 1)).longValue();
    }

    /** One read of the opened file. */
    @FunctionalInterface
    interface Reader<T> {
        T read(FileChannel channel) throws IOException;
    }
}
