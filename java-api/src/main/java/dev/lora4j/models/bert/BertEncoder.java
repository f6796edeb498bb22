package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.ModuleList;
import dev.lora4j.nn.PackedTokens;

/**
 * HF's {@code BertEncoder}: child {@code layer}, a {@link ModuleList} of {@link BertLayer}s run
 * in order. Ownership and threads: as every {@link Module}.
 */
public class BertEncoder extends Module {

    public BertEncoder(BertConfig config) {
        ModuleList layers = new ModuleList();
        for (int i = 0; i < config.numHiddenLayers(); i++) layers.add(new BertLayer(config));
        registerModule("layer", layers);
    }

    @Override
    public Tensor forward(Tensor hidden) {
        return forward(hidden, null);
    }

    /** hidden (batch, seq, hidden) through every layer; mask additive (batch, 1, 1, seq) or null. */
    public Tensor forward(Tensor hidden, Tensor mask) {
        return forward(hidden, mask, null);
    }

    /** As {@link #forward(Tensor, Tensor)}; with a {@code layout}, on its packed real tokens (see {@link BertLayer}). */
    public Tensor forward(Tensor hidden, Tensor mask, PackedTokens layout) {
        try (var scope = TensorScope.open()) {
            Tensor h = hidden;
            for (Module layer : child("layer").children().values()) h = ((BertLayer) layer).forward(h, mask, layout);
            return (h == hidden ? h.alias() : h).keep();
        }
    }
}
