package dev.lora4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.io.PairedFiles;
import dev.lora4j.io.Safetensors;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
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
 * plain file names inside it (no separators, no links out), every tensor must come from the
 * shard the index names, and reading is all-or-nothing (a failure closes what was read).
 * A single-file checkpoint is written and read as a pair ({@link PairedFiles}): a load running
 * beside a save gets the config and the weights of one save, never a half-written file.
 * Stateless, thread-safe.
 */
public final class HfCheckpoint {

    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

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
            return new Contents(new String(pair.config(), StandardCharsets.UTF_8), pair.weights().tensors());
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

    /** The text of {@code config.json}. */
    public static String readConfig(Path dir) throws IOException {
        return Files.readString(regular(dir, CONFIG));
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
        JsonNode map = new ObjectMapper().readTree(Files.readString(regular(dir, INDEX))).path("weight_map");
        if (!map.isObject() || map.isEmpty()) throw new IOException(index + ": no weight_map");
        Map<String, String> where = new LinkedHashMap<>();
        Set<String> shards = new LinkedHashSet<>();
        for (var it = map.fields(); it.hasNext(); ) {
            var e = it.next();
            String shard = e.getValue().asText();
            if (!e.getValue().isTextual() || shard.isEmpty() || shard.contains("/") || shard.contains("\\") || shard.startsWith(".")) {
                throw new IOException(index + ": shard name '" + shard + "' of '" + e.getKey() + "' is not a plain file name");
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
                    throw new IOException(shard + " holds tensors the index does not place there: " + stray);
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

    /** dir/name, which must be a regular file that is not a link. */
    private static Path regular(Path dir, String name) throws IOException {
        Path p = dir.resolve(name);
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) throw new IOException(p + " is missing or not a regular file");
        return p;
    }
}
