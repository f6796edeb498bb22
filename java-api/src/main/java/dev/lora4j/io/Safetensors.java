package dev.lora4j.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.internal.UntrustedJson;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Reads and writes the safetensors format (Hugging Face): an 8-byte little-endian header
 * length N, N bytes of JSON mapping each tensor name to {@code dtype}, {@code shape} and
 * {@code data_offsets} [begin, end) into the byte buffer that follows (plus an optional
 * {@code __metadata__} map of strings), then the little-endian tensor data. The JSON object may
 * be followed by JSON whitespace (the spaces that pad the header to alignment), by nothing else,
 * as in Hugging Face's reader.
 *
 * <p>Reading goes through the file channel (never a memory mapping, whose truncation by
 * another process, for example {@code cp} of a new file over the old one, would kill the JVM
 * with SIGBUS): the header is checked against the file's size before anything is allocated.
 * A file that changes while it is read (its identity, size or time stamps differ after the
 * read from before it) is read again, up to three times, then refused; so a file replaced by a
 * rename is read whole, old or new, and one rewritten in place (as {@code cp} does) is read
 * whole or refused, as long as the rewrite starts after the read does: no reader can see a
 * single write already under way when it starts, and file systems with coarse time stamps
 * (Linux before 6.13) can hide a change made in the same clock tick as the one before. Every
 * malformed or changing file is refused with an {@link IOException} naming the problem, and
 * nothing is returned half-loaded. Writing goes to a temporary file that is renamed into
 * place, so readers never see a partial file; the file gets the permissions the process's
 * umask gives a new file.
 * Stateless and thread-safe.
 */
public final class Safetensors {

    /** Duplicate names refused (a name read as either of two tensors), and text after the header's object (as Hugging Face's reader). */
    /** Hugging Face's limit on the header (safetensors' MAX_HEADER_SIZE: 100,000,000 bytes). */
    private static final long MAX_HEADER = 100_000_000L;
    /** Names and strings as long as the header allows (Jackson's defaults refused files HF reads and lora4j writes). */
    private static final ObjectMapper JSON = UntrustedJson.mapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    static {
        JSON.getFactory().setStreamReadConstraints(com.fasterxml.jackson.core.StreamReadConstraints.builder()
                .maxStringLength((int) MAX_HEADER).maxNameLength((int) MAX_HEADER).build());
    }

    /** Bytes written per call (a ByteBuffer holds at most 2 GiB). */
    private static final long WRITE_CHUNK = 1L << 30;
    private static final int READ_ATTEMPTS = 3;

    private Safetensors() {}

    /** What a file holds: tensors in file order, and the metadata. */
    public record Contents(Map<String, Tensor> tensors, Map<String, String> metadata) implements AutoCloseable {
        /** Closes every tensor. */
        @Override
        public void close() {
            tensors.values().forEach(Tensor::close);
        }
    }

    static String code(DType d) {
        return switch (d) {
            case FLOAT64 -> "F64";
            case FLOAT32 -> "F32";
            case FLOAT16 -> "F16";
            case BFLOAT16 -> "BF16";
            case INT64 -> "I64";
            case INT32 -> "I32";
            case INT16 -> "I16";
            case INT8 -> "I8";
            case UINT8 -> "U8";
            case BOOL -> "BOOL";
        };
    }

    static DType dtype(String code) throws IOException {
        return switch (code) {
            case "F64" -> DType.FLOAT64;
            case "F32" -> DType.FLOAT32;
            case "F16" -> DType.FLOAT16;
            case "BF16" -> DType.BFLOAT16;
            case "I64" -> DType.INT64;
            case "I32" -> DType.INT32;
            case "I16" -> DType.INT16;
            case "I8" -> DType.INT8;
            case "U8" -> DType.UINT8;
            case "BOOL" -> DType.BOOL;
            default -> throw new IOException("unknown safetensors dtype '" + code + "'");
        };
    }

    /**
     * Reads every tensor of {@code file}. The tensors belong to the caller (or the current
     * scope): close the returned contents when done.
     */
    public static Contents read(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) throw new IOException("safetensors needs a little-endian machine");
        return FileVersion.readStable(file, READ_ATTEMPTS, ch -> readOnce(ch, file));
    }

    private static Contents readOnce(FileChannel ch, Path file) throws IOException {
        String where = file.toString();
        long size = ch.size();
        if (size < 8) throw new IOException(where + ": truncated safetensors file (" + size + " bytes, no header length)");
        long n = readFully(ch, java.nio.ByteBuffer.allocate(8), 0, where).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (n < 2 || n > MAX_HEADER || n > size - 8) {
            throw new IOException(where + ": header length " + Long.toUnsignedString(n) + " does not fit a file of " + size + " bytes");
        }
        byte[] headerBytes = readFully(ch, java.nio.ByteBuffer.allocate((int) n), 8, where).array();
        Header header = parse(where, utf8(headerBytes, where), size - 8 - n);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (TensorScope scope = TensorScope.open()) {
            for (Entry e : header.entries) tensors.put(e.name, readTensor(ch, 8 + n, e, where));
            if (ch.size() != size) throw changed(where, size, ch.size());
            tensors.values().forEach(Tensor::keep);
        }
        return new Contents(tensors, header.metadata);
    }

    /** One tensor's bytes, read from the channel into a staging buffer, then copied into a new tensor. */
    private static Tensor readTensor(FileChannel ch, long dataStart, Entry e, String where) throws IOException {
        long bytes = e.end - e.begin;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment staging = arena.allocate(Math.max(bytes, 1), 8);
            long done = 0;
            while (done < bytes) {
                int chunk = (int) Math.min(bytes - done, 1 << 30);
                readFully(ch, staging.asSlice(done, chunk).asByteBuffer(), dataStart + e.begin + done, where);
                done += chunk;
            }
            return Tensor.copyOf(staging.asSlice(0, bytes), e.dtype, e.shape);
        }
    }

    /** Fills {@code buf} from {@code position}; a file that ends early changed while it was read. */
    private static java.nio.ByteBuffer readFully(FileChannel ch, java.nio.ByteBuffer buf, long position, String where) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int r = ch.read(buf, pos);
            if (r < 0) throw new IOException(where + ": the file ended at byte " + pos + " while it was read (was it replaced or truncated meanwhile?)");
            pos += r;
        }
        return buf.flip();
    }

    /** The header's text; bytes that are not UTF-8 are refused (a lenient decoding would make different names equal). */
    private static String utf8(byte[] bytes, String where) throws IOException {
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new IOException(where + ": the header is not valid UTF-8");
        }
    }

    private static IOException changed(String where, long before, long after) {
        return new IOException(where + ": the file changed while it was read (" + before + " bytes, then " + after + ")");
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

    private record Header(List<Entry> entries, Map<String, String> metadata) {}

    private static Header parse(String where, String text, long dataSize) throws IOException {
        JsonNode root;
        try {
            // Only JSON whitespace may follow the object: the spaces that pad the header among it.
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            // The position and kind only: Jackson's message would quote the file's bytes.
            throw new IOException(where + ": bad JSON header: " + UntrustedJson.describe(e).replaceFirst("^duplicate name", "Duplicate tensor name"));
        }
        if (root == null || !root.isObject()) throw new IOException(where + ": the header is not a JSON object");
        List<Entry> entries = new ArrayList<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            var f = it.next();
            String name = f.getKey();
            JsonNode v = f.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new IOException(where + ": __metadata__ must be an object of strings");
                for (var m : (Iterable<Map.Entry<String, JsonNode>>) v::fields) {
                    if (!m.getValue().isTextual()) throw new IOException(where + ": __metadata__['" + m.getKey() + "'] is not a string");
                    metadata.put(m.getKey(), m.getValue().asText());
                }
                continue;
            }
            entries.add(entry(where, name, v));
        }
        checkLayout(where, entries, dataSize);
        return new Header(entries, metadata);
    }

    private static Entry entry(String where, String name, JsonNode v) throws IOException {
        String at = where + ": tensor '" + name + "'";
        if (!v.isObject()) throw new IOException(at + " is not an object");
        JsonNode dt = v.get("dtype"), sh = v.get("shape"), off = v.get("data_offsets");
        if (dt == null || !dt.isTextual()) throw new IOException(at + " has no dtype");
        if (sh == null || !sh.isArray()) throw new IOException(at + " has no shape");
        if (off == null || !off.isArray() || off.size() != 2) throw new IOException(at + " has no [begin, end] data_offsets");
        DType dtype;
        try {
            dtype = dtype(dt.asText());
        } catch (IOException e) {
            throw new IOException(at + ": " + e.getMessage());
        }
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode s = sh.get(i);
            if (!s.canConvertToExactIntegral() || !s.canConvertToLong() || s.asLong() < 0) {
                throw new IOException(at + " has a bad shape " + sh);
            }
            shape[i] = s.asLong();
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException e) {
                throw new IOException(at + " has a shape too large: " + sh);
            }
        }
        JsonNode b = off.get(0), e = off.get(1);
        if (!b.canConvertToExactIntegral() || !e.canConvertToExactIntegral() || !b.canConvertToLong() || !e.canConvertToLong()) {
            throw new IOException(at + " has bad data_offsets " + off);
        }
        long begin = b.asLong(), end = e.asLong();
        if (begin < 0 || end < begin) throw new IOException(at + " has bad data_offsets " + off);
        long expected;
        try {
            expected = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException ex) {
            throw new IOException(at + " is too large");
        }
        if (end - begin != expected) {
            throw new IOException(at + ": shape " + Arrays.toString(shape) + " of " + dt.asText() + " needs " + expected
                    + " bytes but data_offsets " + off + " hold " + (end - begin));
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    /** Offsets must lie inside the data, not overlap, and cover it without holes. */
    private static void checkLayout(String where, List<Entry> entries, long dataSize) throws IOException {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort((x, y) -> Long.compare(x.begin, y.begin));
        long pos = 0;
        for (Entry e : sorted) {
            if (e.begin < pos) throw new IOException(where + ": tensor '" + e.name + "' overlaps another tensor's bytes");
            if (e.begin > pos) throw new IOException(where + ": bytes " + pos + ".." + e.begin + " before tensor '" + e.name + "' belong to no tensor");
            if (e.end > dataSize) {
                throw new IOException(where + ": tensor '" + e.name + "' ends at byte " + e.end + ", past the data (" + dataSize + " bytes)");
            }
            pos = e.end;
        }
        if (pos != dataSize) throw new IOException(where + ": " + (dataSize - pos) + " bytes at the end belong to no tensor");
    }

    /** Writes {@code tensors} (in map order) with no metadata. */
    public static void write(Path file, Map<String, Tensor> tensors) throws IOException {
        write(file, tensors, Map.of());
    }

    /**
     * Writes {@code tensors} (in map order) and {@code metadata} to {@code file} atomically:
     * into a temporary file in the same folder, then renamed over {@code file}.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(tensors, "tensors");
        Objects.requireNonNull(metadata, "metadata");
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            for (var e : metadata.entrySet()) {
                meta.put(wellFormed(e.getKey(), "a metadata key"), wellFormed(e.getValue(), "metadata '" + e.getKey() + "'"));
            }
        }
        long offset = 0;
        for (var e : tensors.entrySet()) {
            if (wellFormed(e.getKey(), "a tensor name").equals("__metadata__")) throw new IllegalArgumentException("'__metadata__' cannot name a tensor");
            Tensor t = Objects.requireNonNull(e.getValue(), e.getKey());
            long bytes = t.numel() * t.dtype().byteSize();
            ObjectNode node = header.putObject(e.getKey());
            node.put("dtype", code(t.dtype()));
            var shape = node.putArray("shape");
            for (long s : t.shape()) shape.add(s);
            node.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        if (json.length > MAX_HEADER - 8) {
            throw new IllegalArgumentException("the header would be " + json.length + " bytes; safetensors readers take at most " + MAX_HEADER);
        }
        int padded = (json.length + 7) / 8 * 8; // align the data to 8 bytes, padding with spaces
        byte[] head = Arrays.copyOf(json, padded);
        Arrays.fill(head, json.length, padded, (byte) ' ');
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = dir.resolve(".st-" + java.util.UUID.randomUUID() + ".tmp"); // short: the file's own name may be 255 bytes
        try {
            // CREATE_NEW without explicit permissions: the file gets what the umask gives (createTempFile would make it owner-only).
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.CREATE_NEW)) {
                var len = java.nio.ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).flip();
                writeFully(ch, len);
                writeFully(ch, java.nio.ByteBuffer.wrap(head));
                for (Tensor t : tensors.values()) {
                    try (Tensor c = t.contiguous()) {
                        MemorySegment d = c.numel() > 0 ? c.data() : MemorySegment.NULL;
                        for (long done = 0; done < d.byteSize(); done += WRITE_CHUNK) {
                            writeFully(ch, d.asSlice(done, Math.min(WRITE_CHUNK, d.byteSize() - done)).asByteBuffer());
                        }
                    }
                }
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** {@code s}, refused when null or not well-formed UTF-16 (a lone surrogate, which other readers refuse). */
    private static String wellFormed(String s, String what) {
        if (s == null) throw new IllegalArgumentException(what + " is null");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException(what + " holds a lone surrogate at index " + i + ": not valid UTF-8 when written");
            }
        }
        return s;
    }

    private static void writeFully(FileChannel ch, java.nio.ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }
}
