package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.LayerNorm;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;

/**
 * HF's {@code BertSelfOutput} and {@code BertOutput} (the same computation):
 * {@code LayerNorm(dropout(dense(hidden)) + residual)}. Children {@code dense}, {@code LayerNorm},
 * {@code dropout}. Ownership and threads: as every {@link Module}.
 */
public class BertOutput extends Module {

    public BertOutput(BertConfig config, int inFeatures) {
        registerModule("dense", new Linear(inFeatures, config.hiddenSize()));
        registerModule("LayerNorm", new LayerNorm(config.hiddenSize(), config.layerNormEps()));
        registerModule("dropout", new Dropout(config.hiddenDropoutProb()));
    }

    /** Always throws: this module needs the residual, see {@link #forward(Tensor, Tensor)}. */
    @Override
    public Tensor forward(Tensor input) {
        throw new UnsupportedOperationException("BertOutput needs the residual input: call forward(hidden, residual)");
    }

    public Tensor forward(Tensor hidden, Tensor residual) {
        try (var scope = TensorScope.open()) {
            Tensor h = child("dropout").forward(child("dense").forward(hidden));
            return child("LayerNorm").forward(h.add(residual)).keep();
        }
    }
}
