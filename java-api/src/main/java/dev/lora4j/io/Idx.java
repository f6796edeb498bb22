package dev.lora4j.io;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reads the IDX format of MNIST-style data sets (LeCun's): two zero bytes, a type byte, the
 * number of dimensions (1 to 255), the sizes as big-endian 32-bit integers, then the elements in
 * big-endian order, and nothing after them. Gzipped files (by content, not by name) are read
 * transparently; the IDX bytes are then the whole decompressed stream (all its gzip members).
 *
 * <p>Types: 0x08 unsigned byte (uint8 tensor), 0x09 signed byte (int8), 0x0B short (int16),
 * 0x0C int (int32), 0x0D float (float32), 0x0E double (float64). The file is untrusted: the
 * data size its header declares must be at most a limit ({@link #DEFAULT_MAX_BYTES} unless the
 * caller gives another), so a small gzip file that inflates to gigabytes is refused before it
 * is read; an uncompressed file must hold exactly the declared bytes, checked before anything
 * is allocated; a stream is read into native memory in pieces that grow only as bytes arrive,
 * so a header that lies costs no more memory than the bytes really there. Data that ends early
 * or goes on past the declared size is refused with an {@link IOException}, and no message
 * quotes the file's bytes. A file that changes while it is read is read again, up to three
 * times, then refused (see {@code FileVersion} for what a reader can see), never returned as a
 * mix of two versions. Stateless and thread-safe.
 */
public final class Idx {

    /**
     * The largest tensor data, in bytes, that {@link #read(Path)} and
     * {@link #read(InputStream, String)} accept: 1 GiB, more than the largest MNIST-style set
     * (EMNIST ByClass's training images, 547 MB). Pass a larger limit to read more.
     */
    public static final long DEFAULT_MAX_BYTES = 1L << 30;

    /** The first piece of a stream's data; pieces double from it up to the declared size. */
    private static final long FIRST_PIECE = 1 << 20;

    private Idx() {}

    /** The tensor stored in {@code file}, shaped as its header says, if its data is at most {@link #DEFAULT_MAX_BYTES}. */
    public static Tensor read(Path file) throws IOException {
        return read(file, DEFAULT_MAX_BYTES);
    }

    /**
     * The tensor stored in {@code file}, shaped as its header says; a header declaring more than
     * {@code maxBytes} bytes of data is refused before the data is read.
     *
     * @throws IllegalArgumentException if {@code maxBytes} is negative
     */
    public static Tensor read(Path file, long maxBytes) throws IOException {
        checkLimit(maxBytes);
        return FileVersion.readStable(file, 3, ch -> readOnce(ch, file, maxBytes));
    }

    private static Tensor readOnce(FileChannel ch, Path file, long maxBytes) throws IOException {
        // The channel belongs to readStable, which still needs it open: closing the streams leaves it be.
        InputStream raw = new BufferedInputStream(new FilterInputStream(Channels.newInputStream(ch)) {
            @Override
            public void close() {}
        }, 1 << 16);
        raw.mark(2);
        int b0 = raw.read(), b1 = raw.read();
        raw.reset();
        boolean gzip = b0 == 0x1f && b1 == 0x8b;
        try (InputStream in = gzip ? new GZIPInputStream(raw, 1 << 16) : raw) {
            return read(in, file.toString(), gzip ? -1 : ch.size(), maxBytes);
        }
    }

    /**
     * Reads one IDX tensor from a stream ({@code name} appears in error messages), if its data is
     * at most {@link #DEFAULT_MAX_BYTES}. The stream must end after the tensor's data.
     */
    public static Tensor read(InputStream stream, String name) throws IOException {
        return read(stream, name, DEFAULT_MAX_BYTES);
    }

    /**
     * Reads one IDX tensor from a stream ({@code name} appears in error messages); a header
     * declaring more than {@code maxBytes} bytes of data is refused before the data is read. The
     * stream must end after the tensor's data.
     *
     * @throws IllegalArgumentException if {@code maxBytes} is negative
     */
    public static Tensor read(InputStream stream, String name, long maxBytes) throws IOException {
        checkLimit(maxBytes);
        return read(stream, name, -1, maxBytes);
    }

    private static void checkLimit(long maxBytes) {
        if (maxBytes < 0) throw new IllegalArgumentException("maxBytes must be >= 0, got " + maxBytes);
    }

    /** {@code size}: the stream's length when known (an uncompressed file), else -1. */
    private static Tensor read(InputStream stream, String name, long size, long maxBytes) throws IOException {
        DataInputStream in = new DataInputStream(stream);
        int magic;
        try {
            magic = in.readInt();
        } catch (EOFException e) {
            throw new IOException(name + ": not an IDX file (shorter than its 4-byte magic number)");
        }
        // The bytes themselves are not quoted: the file may be anything, a secret too.
        if ((magic >>> 16) != 0) throw new IOException(name + ": not an IDX file (it does not start with two zero bytes)");
        int type = (magic >>> 8) & 0xff;
        int rank = magic & 0xff;
        DType dtype = switch (type) {
            case 0x08 -> DType.UINT8;
            case 0x09 -> DType.INT8;
            case 0x0B -> DType.INT16;
            case 0x0C -> DType.INT32;
            case 0x0D -> DType.FLOAT32;
            case 0x0E -> DType.FLOAT64;
            default -> throw new IOException(name + ": unknown IDX element type 0x" + Integer.toHexString(type));
        };
        if (rank == 0) throw new IOException(name + ": IDX file with zero dimensions");
        long[] shape = new long[rank];
        try {
            for (int i = 0; i < rank; i++) shape[i] = Integer.toUnsignedLong(in.readInt());
        } catch (EOFException e) {
            throw new IOException(name + ": truncated IDX header (" + rank + " dimensions declared)");
        }
        long bytes;
        try {
            long count = 1;
            for (long s : shape) count = Math.multiplyExact(count, s);
            bytes = Math.multiplyExact(count, dtype.byteSize());
        } catch (ArithmeticException e) {
            bytes = -1;
        }
        if (bytes < 0 && Arrays.stream(shape).noneMatch(s -> s == 0)) {
            throw new IOException(name + ": IDX sizes " + Arrays.toString(shape) + " overflow");
        }
        bytes = Math.max(bytes, 0); // a size of 0 makes the product 0 whatever the others are
        if (bytes > maxBytes) {
            throw new IOException(name + ": IDX sizes " + Arrays.toString(shape) + " declare " + bytes
                    + " bytes of data, over the limit of " + maxBytes + " bytes (pass a larger maxBytes to Idx.read to read it)");
        }
        long header = 4 + 4L * rank;
        if (size >= 0 && bytes != size - header) {
            if (bytes > size - header) {
                throw new IOException(name + ": truncated IDX file: header " + Arrays.toString(shape) + " needs " + bytes
                        + " data bytes but the file holds " + Math.max(0, size - header));
            }
            throw new IOException(name + ": " + (size - header - bytes) + " bytes after the " + bytes + " data bytes that the IDX header "
                    + Arrays.toString(shape) + " declares");
        }
        return readData(in, name, dtype, shape, bytes, size >= 0);
    }

    /**
     * The declared data, read into native memory in pieces that grow only as the bytes arrive
     * ({@code sizeChecked}: the file's size already proved them there), swapped from big-endian
     * as they come; then the stream must end.
     */
    private static Tensor readData(InputStream in, String name, DType dtype, long[] shape, long bytes, boolean sizeChecked)
            throws IOException {
        int width = (int) dtype.byteSize();
        ValueLayout element = switch (width) {
            case 1 -> ValueLayout.JAVA_BYTE;
            case 2 -> ValueLayout.JAVA_SHORT_UNALIGNED;
            case 4 -> ValueLayout.JAVA_INT_UNALIGNED;
            default -> ValueLayout.JAVA_LONG_UNALIGNED;
        };
        ValueLayout bigEndian = element.withOrder(ByteOrder.BIG_ENDIAN);
        byte[] chunk = new byte[1 << 16]; // a multiple of every width: only the last chunk is short, by whole elements
        MemorySegment chunkSegment = MemorySegment.ofArray(chunk);
        Arena arena = Arena.ofConfined();
        try {
            long capacity = sizeChecked ? bytes : Math.min(bytes, FIRST_PIECE);
            MemorySegment data = arena.allocate(Math.max(capacity, 1), 8);
            long have = 0;
            while (have < bytes) {
                if (have == capacity) {
                    capacity = Math.min(bytes, 2 * capacity);
                    Arena bigger = Arena.ofConfined();
                    MemorySegment grown = bigger.allocate(capacity, 8);
                    MemorySegment.copy(data, 0, grown, 0, have);
                    arena.close();
                    arena = bigger;
                    data = grown;
                }
                int n = (int) Math.min(chunk.length, capacity - have);
                int got = readFully(in, chunk, n, name);
                if (got < n) {
                    throw new IOException(name + ": truncated IDX file: header " + Arrays.toString(shape) + " needs " + bytes
                            + " data bytes but the data ends after " + (have + got));
                }
                MemorySegment.copy(chunkSegment, bigEndian, 0, data, element.withOrder(ByteOrder.nativeOrder()), have, n / width);
                have += n;
            }
            if (readFully(in, chunk, 1, name) > 0) {
                throw new IOException(name + ": data after the " + bytes + " data bytes that the IDX header " + Arrays.toString(shape)
                        + " declares");
            }
            return Tensor.copyOf(data.asSlice(0, bytes), dtype, shape);
        } finally {
            arena.close();
        }
    }

    /**
     * Up to {@code n} bytes into {@code buf}, fewer only where the stream ends. A gzip stream cut
     * short or corrupt is refused here, so that its end (and CRC) is checked too.
     */
    private static int readFully(InputStream in, byte[] buf, int n, String name) throws IOException {
        int got = 0;
        try {
            while (got < n) {
                int r = in.read(buf, got, n - got);
                if (r < 0) break;
                got += r;
            }
        } catch (EOFException e) {
            throw new IOException(name + ": truncated IDX file: the compressed stream ends early");
        } catch (ZipException e) {
            throw new IOException(name + ": corrupt gzip data (" + e.getMessage() + ")");
        }
        return got;
    }

    private static void swap(byte[] d, int width) {
        for (int i = 0; i < d.length; i += width) {
            for (int a = i, b = i + width - 1; a < b; a++, b--) {
                byte t = d[a];
                d[a] = d[b];
                d[b] = t;
            }
        }
    }

    /** Writes {@code t} (uint8, int8, int16, int32, float32 or float64) as an uncompressed IDX file. */
    public static void write(Tensor t, Path file) throws IOException {
        int type = switch (t.dtype()) {
            case UINT8 -> 0x08;
            case INT8 -> 0x09;
            case INT16 -> 0x0B;
            case INT32 -> 0x0C;
            case FLOAT32 -> 0x0D;
            case FLOAT64 -> 0x0E;
            default -> throw new IllegalArgumentException("IDX cannot hold " + t.dtype());
        };
        long[] shape = t.shape();
        if (shape.length == 0 || shape.length > 255) throw new IllegalArgumentException("IDX needs 1 to 255 dimensions");
        for (long s : shape) if (s > 0xffffffffL) throw new IllegalArgumentException("IDX sizes are 32-bit, got " + s);
        byte[] data;
        try (Tensor c = t.contiguous()) {
            data = c.data().toArray(ValueLayout.JAVA_BYTE);
        }
        if (t.dtype().byteSize() > 1 && ByteOrder.nativeOrder() != ByteOrder.BIG_ENDIAN) swap(data, t.dtype().byteSize());
        // Into a new file beside it, then renamed over it: a failure leaves the old file whole, and
        // a link at the destination is replaced, not followed.
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = dir.resolve(".idx-" + java.util.UUID.randomUUID() + ".tmp");
        try {
            try (var out = new java.io.DataOutputStream(new java.io.BufferedOutputStream(
                    Files.newOutputStream(tmp, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)))) {
                out.writeInt(type << 8 | shape.length);
                for (long s : shape) out.writeInt((int) s);
                out.write(data);
            }
            Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
