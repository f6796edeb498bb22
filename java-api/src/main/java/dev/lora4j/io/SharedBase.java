package dev.lora4j.io;

import dev.lora4j.Tensor;
import dev.lora4j.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The rules of {@link PeftAdapter#loadShared}: a load into a base that other adapters use at the
 * same time may add LoRA factors only. Stateless.
 */
final class SharedBase {

    private SharedBase() {}

    /** Refuses, by the config's field, what would change the shared base or cannot be cut to {@code rank}. */
    static void check(Path configFile, LoraConfig c, int rank) throws IOException {
        if (c.init() == LoraConfig.Init.PISSA || c.init() == LoraConfig.Init.OLORA) {
            throw new IOException(configFile + ": init_lora_weights \"" + c.initLoraWeights() + "\" rewrites the base weights on load"
                    + " (W <- W - s*B*A), which every other adapter sharing this base would see: such an adapter cannot join a shared"
                    + " base (merge it into a base of its own instead)");
        }
        if (rank > 0 && c.useDora()) {
            throw new IOException(configFile + ": use_dora: a DoRA adapter's magnitude belongs to its full rank; it cannot be cut to rank " + rank);
        }
    }

    /**
     * Takes the {@code modules_to_save} tensors out of {@code tensors} into {@code out} (copies,
     * keyed by the path after PEFT's prefix), each checked to hold finite floating-point values.
     * A key belongs to a name when its path is that name or has it as a segment
     * ({@code classifier.weight}, {@code bert.classifier.bias} for {@code "classifier"}); a LoRA
     * factor under such a name is refused (a module is saved whole or adapted, not both).
     *
     * @return no tensors to write into the model: an empty map
     */
    static Map<Tensor, Tensor> detach(Path file, List<String> modulesToSave, Map<String, Tensor> tensors, Map<String, Tensor> out)
            throws IOException {
        for (Iterator<Map.Entry<String, Tensor>> it = tensors.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            String k = e.getKey();
            if (!k.startsWith(PeftAdapter.PREFIX)) continue; // refused by byModule
            String rest = k.substring(PeftAdapter.PREFIX.length());
            String saved = modulesToSave.stream().filter(n -> rest.startsWith(n + ".") || rest.contains("." + n + ".")).findFirst().orElse(null);
            if (saved == null) continue;
            if (PeftAdapter.isLoraFactor(rest)) throw PeftAdapter.factorInSavedModule(file, k, saved);
            Tensor v = e.getValue();
            if (!v.dtype().isFloatingPoint()) throw new IOException(file + ": '" + k + "' holds " + v.dtype() + ", not floating-point values");
            if (!v.allFinite()) throw new IOException(file + ": '" + k + "' holds NaN or infinite values");
            out.put(rest, v.clone());
            it.remove();
        }
        return Map.of();
    }
}
