package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.lora.AdapterLock;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
import java.util.List;

/**
 * Model-level DyLoRA: surgery with DyLoRA layers (r_max = {@code config.r()}), selected as
 * {@link Lora#wrap} selects, and setting one rank on every DyLoRA layer of a model. The
 * merge, unmerge and trainable-marking operations of {@link Lora} apply to DyLoRA layers
 * too (merging at the rank each layer is set to). Threads: {@link #forward} and
 * {@link #setRank} follow the read-write discipline of {@link AdapterLock}: a rank change waits
 * for running forwards of the model, and every forward sees one state.
 */
public final class DyLora {

    private DyLora() {}

    /** Wraps the selected Linear, Embedding and (ungrouped) Conv layers with DyLoRA layers. */
    public static Lora.WrapReport wrap(Module model, LoraConfig config) {
        return Lora.wrap(model, config, DyLora::wrapper);
    }

    /** The DyLoRA wrapper of one layer. */
    public static LoraLayer wrapper(Module m, LoraConfig config) {
        if (m instanceof Linear || m instanceof dev.lora4j.nn.HfConv1D) return new DyLoraLinear(m, config);
        if (m instanceof Embedding e) return new DyLoraEmbedding(e, config);
        if (m instanceof Conv c) return new DyLoraConv(c, config);
        throw new IllegalArgumentException("DyLoRA cannot wrap " + m.getClass().getSimpleName());
    }

    /**
     * The model's output with every DyLoRA layer at rank {@code b} for this call only: the
     * layers' own ranks are not changed, so threads serving the same model (eval mode) can each
     * ask for their own rank at once. Layers that are not DyLoRA layers are untouched.
     *
     * @throws IllegalArgumentException when {@code b} is outside 1..r_max of some DyLoRA layer
     * @throws IllegalStateException when a DyLoRA layer is merged (its weight holds one rank)
     */
    public static Tensor forward(Module model, Tensor input, int b) {
        return AdapterLock.reading(model, () -> forwardLocked(model, input, b));
    }

    private static Tensor forwardLocked(Module model, Tensor input, int b) {
        int layers = 0;
        for (Module m : model.namedModules().values()) {
            if (m instanceof DyLoraLayer d) {
                if (b < 1 || b > d.rMax()) throw new IllegalArgumentException("rank must be in 1.." + d.rMax() + ", got " + b);
                if (d.isMerged()) throw new IllegalStateException("a merged DyLoRA layer serves its merged rank only: unmerge first");
                layers++;
            }
        }
        if (layers == 0) throw new IllegalArgumentException("the model has no DyLoRA layer");
        Integer before = DyLoraLayer.CALL_RANK.get();
        DyLoraLayer.CALL_RANK.set(b);
        try {
            return model.forward(input);
        } finally {
            if (before == null) DyLoraLayer.CALL_RANK.remove();
            else DyLoraLayer.CALL_RANK.set(before);
        }
    }

    /** Sets rank {@code b} on every DyLoRA layer of {@code model}; returns how many layers. */
    public static int setRank(Module model, int b) {
        return AdapterLock.changing(model, () -> {
            List<DyLoraLayer> layers = new ArrayList<>();
            for (Module m : model.namedModules().values()) if (m instanceof DyLoraLayer d) layers.add(d);
            layers.forEach(d -> d.checkRank(b)); // every layer before any changes: one rank for all, or none changed
            layers.forEach(d -> d.setRank(b));
            return layers.size();
        });
    }
}
