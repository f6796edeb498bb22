package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.dylora.DyLoraLayer;
import dev.lora4j.dylora.DyLoraLinear;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a model's DyLoRA linear layers as an adapter folder the service serves at any rank:
 * PEFT's layout (so {@link PeftAdapter#load} reads and checks it: keys
 * {@code base_model.model.<path>.lora_A.weight} / {@code .lora_B.weight} holding all r_max
 * ranks, r = r_max, α), plus {@code "lora4j_dylora": true} in {@code adapter_config.json},
 * which PEFT itself does not know (PEFT has no DyLoRA; {@code PeftAdapter.save} refuses
 * DyLoRA layers for that reason). Loaded by PEFT, the folder is the adapter at rank r_max.
 */
public final class DyLoraFolders {

    /** The config field that marks a DyLoRA adapter folder. */
    public static final String MARKER = "lora4j_dylora";

    private DyLoraFolders() {}

    /** Saves every {@link DyLoraLinear} of {@code model} (same r_max and α everywhere) to {@code dir}. */
    public static void save(Module model, Path dir) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        ObjectNode cfg = Exchanges.JSON.createObjectNode();
        var targets = Exchanges.JSON.createArrayNode();
        Integer r = null;
        Double alpha = null;
        try (TensorScope s = TensorScope.open()) {
            for (var e : model.namedModules().entrySet()) {
                if (!(e.getValue() instanceof DyLoraLayer d)) continue;
                if (!(d instanceof DyLoraLinear)) throw new IllegalArgumentException(e.getKey() + ": only DyLoRA linear layers are saved");
                if (d.isMerged()) throw new IllegalArgumentException(e.getKey() + " is merged: unmerge first");
                if (r != null && (r != d.rMax() || alpha != d.alpha())) throw new IllegalArgumentException("r_max and alpha must be the same in every layer");
                r = d.rMax();
                alpha = d.alpha();
                tensors.put("base_model.model." + e.getKey() + ".lora_A.weight", d.loraA().detach());
                tensors.put("base_model.model." + e.getKey() + ".lora_B.weight", d.loraB().detach());
                targets.add(e.getKey());
                if (d.config().useRslora()) cfg.put("use_rslora", true);
            }
            if (r == null) throw new IllegalArgumentException("the model has no DyLoRA layer");
            cfg.put("peft_type", "LORA");
            cfg.put("r", r);
            cfg.put("lora_alpha", alpha);
            cfg.put("lora_dropout", 0.0);
            cfg.put("bias", "none");
            cfg.set("target_modules", targets);
            cfg.put(MARKER, true);
            // The two files as one pair, each renamed into place and the weights tied to this config
            // (a plain write tore the config under a reader, followed a link, and paired stale files).
            PeftAdapter.write(dir, Exchanges.JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(cfg), tensors);
        }
    }
}
