package dev.lora4j.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.io.Safetensors;
import java.io.IOException;
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
 * Stateless, thread-safe.
 */
public final class HfCheckpoint {

    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private HfCheckpoint() {}

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
