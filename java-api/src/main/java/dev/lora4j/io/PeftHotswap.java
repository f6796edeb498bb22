package dev.lora4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.Tensor;
import dev.lora4j.lora.Hotswap;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * PEFT's {@code hotswap_adapter}: reads a PEFT adapter folder and overwrites a loaded adapter
 * with it through {@link Hotswap#swap}, keeping names, tensors and shapes (a smaller rank is
 * zero-padded; a larger one needs {@link Hotswap#prepare} first). As PEFT, the configs must
 * agree on {@code use_rslora}, {@code lora_dropout} and {@code use_dora}; the scale of every
 * module is recomputed from the new config (rank_pattern / alpha_pattern included), and the
 * tensors' ranks must be the config's. Modules the new file does not name get a zero update.
 * Stateless; changes the model (one thread, no concurrent forwards).
 */
final class PeftHotswap {

    private PeftHotswap() {}

    static void hotswap(Module model, Path dir, String adapterName) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(adapterName, "adapterName");
        LoraLayer first = Lora.loraLayers(model).values().stream().filter(l -> l.hasAdapter(adapterName)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no adapter named '" + adapterName + "' (have " + Lora.adapterNames(model) + ")"));
        Path configFile = dir.resolve(PeftAdapter.CONFIG);
        Path weightsFile = dir.resolve(PeftAdapter.WEIGHTS);
        if (!Files.isRegularFile(configFile)) throw new IOException(dir + " has no " + PeftAdapter.CONFIG);
        if (!Files.isRegularFile(weightsFile)) throw new IOException(dir + " has no " + PeftAdapter.WEIGHTS);
        JsonNode cfg;
        try {
            cfg = PeftAdapter.JSON.readTree(configFile.toFile());
        } catch (IOException e) {
            throw new IOException(configFile + ": bad JSON: " + e.getMessage(), e);
        }
        if (cfg == null || !cfg.isObject()) throw new IOException(configFile + " is not a JSON object");
        String type = cfg.path("peft_type").asText("LORA");
        if (!type.equals("LORA")) throw new IOException(configFile + ": peft_type " + type + " is not LORA");
        LoraConfig config = PeftAdapter.config(configFile, cfg);
        LoraConfig loaded = first.config(adapterName);
        if (config.useRslora() != loaded.useRslora() || config.loraDropout() != loaded.loraDropout() || config.useDora() != loaded.useDora()) {
            throw new IOException(configFile + ": configs are incompatible for hot-swapping: use_rslora/lora_dropout/use_dora are "
                    + config.useRslora() + "/" + config.loraDropout() + "/" + config.useDora() + ", the loaded adapter's "
                    + loaded.useRslora() + "/" + loaded.loraDropout() + "/" + loaded.useDora());
        }
        Map<String, JsonNode> rankPattern = PeftAdapter.fields(cfg.get("rank_pattern"));
        Map<String, JsonNode> alphaPattern = PeftAdapter.fields(cfg.get("alpha_pattern"));
        try (Safetensors.Contents contents = Safetensors.read(weightsFile)) {
            Map<String, Map<String, Tensor>> byModule = new LinkedHashMap<>();
            for (var e : contents.tensors().entrySet()) {
                String k = e.getKey();
                if (!k.startsWith(PeftAdapter.PREFIX)) throw new IOException(weightsFile + ": key '" + k + "' does not start with " + PeftAdapter.PREFIX);
                String rest = k.substring(PeftAdapter.PREFIX.length());
                String suffix = PeftAdapter.KEY_SUFFIXES.stream().filter(rest::endsWith).findFirst()
                        .orElseThrow(() -> new IOException(weightsFile + ": key '" + k + "' is not a LoRA tensor lora4j knows"));
                byModule.computeIfAbsent(rest.substring(0, rest.length() - suffix.length()), p -> new LinkedHashMap<>()).put(suffix, e.getValue());
            }
            Map<String, Hotswap.Update> updates = new LinkedHashMap<>();
            for (var e : byModule.entrySet()) {
                String path = e.getKey();
                Map<String, Tensor> t = e.getValue();
                Tensor a = t.containsKey(".lora_A.weight") ? t.get(".lora_A.weight") : t.get(".lora_embedding_A");
                Tensor b = t.containsKey(".lora_B.weight") ? t.get(".lora_B.weight") : t.get(".lora_embedding_B");
                Tensor magnitude = t.get(PeftAdapter.MAGNITUDE);
                if (a == null || b == null || t.size() != (magnitude == null ? 2 : 3) || a.dim() == 0) {
                    throw new IOException(weightsFile + ": module '" + path + "' needs exactly one A and one B factor, got " + t.keySet());
                }
                int rank = PeftAdapter.pattern(rankPattern, path).map(JsonNode::asInt).orElse(config.r());
                double alpha = PeftAdapter.pattern(alphaPattern, path).map(JsonNode::asDouble).orElse(config.loraAlpha());
                if (a.size(0) != rank) {
                    throw new IOException(weightsFile + ": module '" + path + "' has rank " + a.size(0) + " but the config says " + rank);
                }
                if (!(alpha > 0)) throw new IOException(configFile + ": lora_alpha of '" + path + "' must be > 0, got " + alpha);
                double scaling = config.useRslora() ? alpha / Math.sqrt(rank) : alpha / rank;
                updates.put(path, new Hotswap.Update(a, b, magnitude, scaling));
            }
            try {
                Hotswap.swap(model, adapterName, updates);
            } catch (IllegalArgumentException | IllegalStateException e) {
                throw new IOException(weightsFile + ": " + e.getMessage(), e);
            }
        }
    }
}
