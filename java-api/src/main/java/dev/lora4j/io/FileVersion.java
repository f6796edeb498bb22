package dev.lora4j.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * them). Immutable.
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

    /** Reads {@code file} with {@code read}, again while the file changed during the read, at most {@code attempts} times. */
    static <T extends AutoCloseable> T readStable(Path file, int attempts, Reader<T> read) throws IOException {
        for (int attempt = 1; ; attempt++) {
            FileVersion before = of(file);
            T value;
            try {
                value = read.read();
            } catch (IOException e) {
                if (attempt == attempts || of(file).equals(before)) throw e;
                continue;
            }
            if (of(file).equals(before)) return value;
            try {
                value.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            if (attempt == attempts) {
                throw new IOException(file + ": the file changed while it was read, " + attempts
                        + " times (write it to a temporary file and rename it into place, as lora4j's writers do)");
            }
        }
    }

    /** One read of the file. */
    @FunctionalInterface
    interface Reader<T> {
        T read() throws IOException;
    }
}
