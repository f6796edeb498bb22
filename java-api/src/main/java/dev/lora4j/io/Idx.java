package dev.lora4j.io;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

/**
 * Reads the IDX format of MNIST-style data sets (LeCun's): two zero bytes, a type byte, the
 * number of dimensions, the sizes as big-endian 32-bit integers, then the elements in
 * big-endian order. Gzipped files (by content, not by name) are read transparently.
 *
 * <p>Types: 0x08 unsigned byte (uint8 tensor), 0x09 signed byte (int8), 0x0B short (int16),
 * 0x0C int (int32), 0x0D float (float32), 0x0E double (float64). The file is untrusted: the
 * size its header declares is checked against the file (uncompressed) before anything is
 * allocated, and a stream is read in growing pieces, so a header that lies costs no more
 * memory than the bytes really there. A file that changes while it is read is read again, up
 * to three times, then refused (see {@code FileVersion} for what a reader can see), never
 * returned as a mix of two versions. Stateless and thread-safe.
 */
public final class Idx {

    private Idx() {}

    /** The tensor stored in {@code file}, shaped as its header says. */
    public static Tensor read(Path file) throws IOException {
        return FileVersion.readStable(file, 3, ch -> readOnce(ch, file));
    }

    private static Tensor readOnce(FileChannel ch, Path file) throws IOException {
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
            return read(in, file.toString(), gzip ? -1 : ch.size());
        }
    }

    /** Reads one IDX tensor from a stream ({@code name} appears in error messages). */
    public static Tensor read(InputStream stream, String name) throws IOException {
        return read(stream, name, -1);
    }

    /** {@code size}: the stream's length when known (an uncompressed file), else -1. */
    private static Tensor read(InputStream stream, String name, long size) throws IOException {
        DataInputStream in = new DataInputStream(stream);
        int magic;
        try {
            magic = in.readInt();
        } catch (EOFException e) {
            throw new IOException(name + ": not an IDX file (shorter than its 4-byte magic number)");
        }
        if ((magic >>> 16) != 0) throw new IOException(name + ": not an IDX file (magic " + Integer.toHexString(magic) + ")");
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
        long count = 1;
        try {
            for (int i = 0; i < rank; i++) {
                shape[i] = Integer.toUnsignedLong(in.readInt());
                count = Math.multiplyExact(count, shape[i]);
            }
        } catch (EOFException e) {
            throw new IOException(name + ": truncated IDX header (" + rank + " dimensions declared)");
        } catch (ArithmeticException e) {
            throw new IOException(name + ": IDX sizes " + Arrays.toString(shape) + " overflow");
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(count, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IOException(name + ": IDX sizes " + Arrays.toString(shape) + " overflow");
        }
        if (bytes > Integer.MAX_VALUE - 16) throw new IOException(name + ": IDX data too large (" + bytes + " bytes)");
        long header = 4 + 4L * rank;
        if (size >= 0 && bytes > size - header) {
            throw new IOException(name + ": truncated IDX file: header " + Arrays.toString(shape) + " needs " + bytes
                    + " data bytes but the file holds " + Math.max(0, size - header));
        }
        byte[] data = readExactly(in, (int) bytes);
        if (data == null) {
            throw new IOException(name + ": truncated IDX file: header " + Arrays.toString(shape) + " needs " + bytes + " data bytes");
        }
        if (dtype.byteSize() > 1 && ByteOrder.nativeOrder() != ByteOrder.BIG_ENDIAN) swap(data, dtype.byteSize());
        return Tensor.copyOf(MemorySegment.ofArray(data), dtype, shape);
    }

    /** Exactly {@code n} bytes, in pieces that grow only as the bytes arrive; null when the stream ends first. */
    private static byte[] readExactly(InputStream in, int n) throws IOException {
        byte[] buf = new byte[Math.min(n, 1 << 20)];
        int have = 0;
        while (have < n) {
            if (have == buf.length) buf = Arrays.copyOf(buf, (int) Math.min(n, 2L * buf.length));
            int r = in.read(buf, have, buf.length - have);
            if (r < 0) return null;
            have += r;
        }
        return buf;
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
        byte[] data;
        try (Tensor c = t.contiguous()) {
            data = c.data().toArray(ValueLayout.JAVA_BYTE);
        }
        if (t.dtype().byteSize() > 1 && ByteOrder.nativeOrder() != ByteOrder.BIG_ENDIAN) swap(data, t.dtype().byteSize());
        try (var out = new java.io.DataOutputStream(new java.io.BufferedOutputStream(Files.newOutputStream(file)))) {
            out.writeInt(type << 8 | shape.length);
            for (long s : shape) {
                if (s > 0xffffffffL) throw new IllegalArgumentException("IDX sizes are 32-bit");
                out.writeInt((int) s);
            }
            out.write(data);
        }
    }
}
