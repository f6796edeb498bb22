package dev.lora4j.hf;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.io.PairedFiles;
import dev.lora4j.io.Safetensors;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Hugging Face checkpoint folder: {@code config.json} and the weights, either one
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}
 * ({@code weight_map}: tensor name → shard file). The folder is untrusted: shard names must be
 * plain file names inside it (no separators, no {@code ..} or other name starting with a dot, no
 * control characters, no links out), every tensor must come from the shard the index names, the
 * JSON files must be UTF-8, at most 16 MiB and give no key twice, and
 * reading is all-or-nothing (a failure closes what was read). Every refusal is an
 * {@link IOException} naming the file.
 * A single-file checkpoint is written and read as a pair ({@link PairedFiles}): a load running
 * beside a save gets the config and the weights of one save, never a half-written file.
 * Stateless, thread-safe.
 */
public final class HfCheckpoint {

    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    /**
     * Largest {@code config.json} or {@code model.safetensors.index.json} read, so that a folder
     * cannot make the reader take a file of any size into the heap. A config is a few kilobytes;
     * an index has one entry of some 100 bytes per tensor, so 16 MiB holds about 150,000 tensors,
     * well past the largest published checkpoints. The same bound as {@link PairedFiles}' for the
     * config of a single-file checkpoint.
     */
    static final long MAX_JSON_BYTES = 16L << 20;
    private static final ObjectMapper JSON = dev.lora4j.internal.UntrustedJson.mapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private HfCheckpoint() {}

    /**
     * A checkpoint's {@code config.json} text and its tensors by HF name. The tensors belong to
     * the caller (or the current scope); {@link #close()} frees them.
     */
    public record Contents(String config, Map<String, Tensor> weights) implements AutoCloseable {
        @Override
        public void close() {
            weights.values().forEach(Tensor::close);
        }
    }

    /**
     * The config and every tensor of the checkpoint in {@code dir}: from {@code model.safetensors}
     * with the config of the same save, or from the shards of {@code model.safetensors.index.json}.
     */
    public static Contents read(Path dir) throws IOException {
        if (Files.exists(dir.resolve(WEIGHTS), LinkOption.NOFOLLOW_LINKS)) {
            regular(dir, WEIGHTS);
            regular(dir, CONFIG);
            PairedFiles.Snapshot pair = PairedFiles.read(dir, CONFIG, WEIGHTS);
            try {
                return new Contents(utf8(pair.config(), dir.resolve(CONFIG)), pair.weights().tensors());
            } catch (IOException e) {
                pair.close();
                throw e;
            }
        }
        String config = readConfig(dir);
        return new Contents(config, readWeights(dir));
    }

    /**
     * Writes {@code config.json} and {@code model.safetensors} (metadata {@code "format": "pt"},
     * as {@code save_pretrained} writes it) into {@code dir} as a pair ({@link PairedFiles}). The
     * tensors must be contiguous and stay the caller's.
     */
    public static void write(Path dir, String config, Map<String, Tensor> weights) throws IOException {
        PairedFiles.write(dir, CONFIG, config.getBytes(StandardCharsets.UTF_8), WEIGHTS, weights);
    }

    /** The text of {@code config.json} (UTF-8, at most 16 MiB). */
    public static String readConfig(Path dir) throws IOException {
        return readText(regular(dir, CONFIG));
    }

    /** The file's text, refused when it is larger than {@link #MAX_JSON_BYTES} or not UTF-8; read without following a link. */
    private static String readText(Path file) throws IOException {
        byte[] bytes;
        try (InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
            bytes = in.readNBytes((int) MAX_JSON_BYTES + 1);
        }
        if (bytes.length > MAX_JSON_BYTES) throw new IOException(file + " is larger than " + MAX_JSON_BYTES + " bytes");
        return utf8(bytes, file);
    }

    /** Strict UTF-8: a lenient decoding would turn bad bytes into U+FFFD and make different names equal. */
    private static String utf8(byte[] bytes, Path file) throws IOException {
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(file + " is not valid UTF-8 text", e);
        }
    }

    /**
     * Every tensor of the checkpoint by HF name, read from {@code model.safetensors} or its
     * shards. The tensors belong to the caller (or the current scope).
     */
    public static Map<String, Tensor> readWeights(Path dir) throws IOException {
        Path single = dir.resolve(WEIGHTS);
        Path index = dir.resolve(INDEX);
        if (Files.exists(single, LinkOption.NOFOLLOW_LINKS)) {
            return Safetensors.read(regular(dir, WEIGHTS)).tensors();
        }
        if (!Files.exists(index, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(dir + " has neither " + WEIGHTS + " nor " + INDEX);
        }
        Path indexFile = regular(dir, INDEX);
        JsonNode root;
        try {
            root = JSON.readTree(readText(indexFile));
        } catch (JsonProcessingException e) { // told by kind and position, never quoted (the file may be a secret)
            throw new IOException(indexFile + ": bad JSON: " + dev.lora4j.internal.UntrustedJson.describe(e));
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject() || map.isEmpty()) throw new IOException(indexFile + ": no weight_map");
        Map<String, String> where = new LinkedHashMap<>();
        Set<String> shards = new LinkedHashSet<>();
        for (var e : map.properties()) {
            JsonNode v = e.getValue();
            if (!v.isTextual()) throw new IOException(indexFile + ": the shard of '" + printable(e.getKey()) + "' is not a file name but " + v);
            String shard = v.asText();
            if (!plainFileName(shard)) {
                throw new IOException(indexFile + ": shard name '" + printable(shard) + "' of '" + printable(e.getKey())
                        + "' is not a plain file name in the checkpoint folder");
            }
            where.put(e.getKey(), shard);
            shards.add(shard);
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (String shard : shards) {
                Map<String, Tensor> part = Safetensors.read(regular(dir, shard)).tensors();
                List<String> stray = new ArrayList<>();
                for (var e : part.entrySet()) {
                    if (!shard.equals(where.get(e.getKey()))) stray.add(e.getKey());
                    if (out.putIfAbsent(e.getKey(), e.getValue()) != null) stray.add(e.getKey());
                }
                if (!stray.isEmpty()) {
                    part.values().forEach(t -> {
                        if (!out.containsValue(t)) t.close();
                    });
                    throw new IOException(dir.resolve(shard) + " holds tensors the index does not place there: " + stray);
                }
            }
            List<String> absent = where.keySet().stream().filter(k -> !out.containsKey(k)).toList();
            if (!absent.isEmpty()) throw new IOException(index + " lists tensors no shard holds: " + absent);
            return out;
        } catch (IOException | RuntimeException e) {
            out.values().forEach(Tensor::close);
            throw e;
        }
    }

    /**
     * A name that stays in the folder and that every file system takes: not empty, no separator,
     * not {@code .}, {@code ..} or another name starting with a dot, no NUL or other control
     * character.
     */
    private static boolean plainFileName(String name) {
        if (name.isEmpty() || name.startsWith(".") || name.contains("/") || name.contains("\\")) return false;
        for (int i = 0; i < name.length(); i++) {
            char ch = name.charAt(i);
            if (ch < 0x20 || ch == 0x7f) return false;
        }
        return true;
    }

    /** A name from the file for a message, control characters escaped. */
    private static String printable(String name) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < name.length(); i++) {
            char ch = name.charAt(i);
            if (ch < 0x20 || ch == 0x7f) b.append(String.format("\\u%04x", (int) ch));
            else b.append(ch);
        }
        return b.toString();
    }

    /** dir/name, which must be a regular file that is not a link. */
    private static Path regular(Path dir, String name) throws IOException {
        Path p;
        try {
            p = dir.resolve(name);
        } catch (InvalidPathException e) {
            throw new IOException(dir + ": '" + printable(name) + "' is not a file name here: " + e.getReason(), e);
        }
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) throw new IOException(p + " is missing or not a regular file");
        return p;
    }
}
