package dev.lora4j.io;

import dev.lora4j.Tensor;
import dev.lora4j.lora.AdapterLock;
import dev.lora4j.lora.Hotswap;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Module;
import java.io.IOException;
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
 * The folder is read as strictly as {@link PeftAdapter#load} reads it ({@link PeftConfigJson},
 * {@link BoundedRegex}, {@link PairedFiles}). Stateless and thread-safe; one adapter change
 * of the model: it waits for running forwards ({@link AdapterLock}).
 */
final class PeftHotswap {

    private PeftHotswap() {}

    static void hotswap(Module model, Path dir, String adapterName) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(adapterName, "adapterName");
        Path configFile = dir.resolve(PeftAdapter.CONFIG);
        Path weightsFile = dir.resolve(PeftAdapter.WEIGHTS);
        try (PairedFiles.Snapshot folder = PairedFiles.read(dir, PeftAdapter.CONFIG, PeftAdapter.WEIGHTS)) {
            BoundedRegex regex = new BoundedRegex(configFile.toString(), BoundedRegex.DEFAULT_BUDGET);
            PeftConfigJson.Parsed parsed = PeftConfigJson.parse(configFile.toString(), folder.config(), regex);
            Map<String, Map<String, Tensor>> byModule = PeftAdapter.byModule(weightsFile, folder.weights().tensors());
            AdapterLock.changing(model, () -> {
                swap(model, adapterName, configFile, weightsFile, parsed, regex, byModule);
                return null;
            });
        }
    }

    private static void swap(Module model, String adapterName, Path configFile, Path weightsFile, PeftConfigJson.Parsed parsed,
                             BoundedRegex regex, Map<String, Map<String, Tensor>> byModule) throws IOException {
        LoraLayer first = Lora.loraLayers(model).values().stream().filter(l -> l.hasAdapter(adapterName)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no adapter named '" + adapterName + "' (have " + Lora.adapterNames(model) + ")"));
        LoraConfig config = parsed.config();
        LoraConfig loaded = first.config(adapterName);
        if (config.useRslora() != loaded.useRslora() || config.loraDropout() != loaded.loraDropout() || config.useDora() != loaded.useDora()) {
            throw new IOException(configFile + ": configs are incompatible for hot-swapping: use_rslora/lora_dropout/use_dora are "
                    + config.useRslora() + "/" + config.loraDropout() + "/" + config.useDora() + ", the loaded adapter's "
                    + loaded.useRslora() + "/" + loaded.loraDropout() + "/" + loaded.useDora());
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
            Integer patternR = PeftAdapter.pattern(regex, "rank_pattern", parsed.rankPattern(), path);
            Double patternAlpha = PeftAdapter.pattern(regex, "alpha_pattern", parsed.alphaPattern(), path);
            int rank = patternR != null ? patternR : config.r();
            double alpha = patternAlpha != null ? patternAlpha : config.loraAlpha();
            if (a.size(0) != rank) {
                throw new IOException(weightsFile + ": module '" + path + "' has rank " + a.size(0) + " but the config says " + rank);
            }
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
