package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;

/**
 * HF's {@code BertForSequenceClassification}: {@code bert} (a {@link BertModel} with pooler),
 * {@code dropout}, {@code classifier} (Linear hidden → num_labels) on the pooled output; state
 * dict keys {@code bert.embeddings...}, {@code classifier.weight}, as HF's. With LoRA, PEFT's
 * {@code modules_to_save=["classifier"]} is the usual companion. Ownership and threads: as
 * {@link BertModel}.
 */
public class BertForSequenceClassification extends Module {

    private final BertConfig config;

    public BertForSequenceClassification(BertConfig config) {
        this.config = config;
        registerModule("bert", new BertModel(config, true));
        registerModule("dropout", new Dropout(config.classifierDropoutOrDefault()));
        registerModule("classifier", new Linear(config.hiddenSize(), config.numLabels()));
    }

    public BertConfig config() {
        return config;
    }

    public BertModel bert() {
        return (BertModel) child("bert");
    }

    /** Logits (batch, num_labels) of input ids with no padding. */
    @Override
    public Tensor forward(Tensor inputIds) {
        return forward(inputIds, null, null);
    }

    private static boolean firstPositionsReal(Tensor attentionMask) {
        if (attentionMask.dim() != 2) return false; // BertModel refuses it with its own message
        try (var scope = TensorScope.open()) {
            for (double v : attentionMask.narrow(1, 0, 1).toDoubleArray()) if (v == 0) return false;
            return true;
        }
    }

    /** Logits (batch, num_labels); mask and token types as {@link BertModel#forward(Tensor, Tensor, Tensor)}. */
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        try (var scope = TensorScope.open()) {
            BertModel bert = bert();
            // The pooler reads position 0: skip the padding only when it is a real token in every row.
            boolean skip = bert.skipsPadding() && attentionMask != null && firstPositionsReal(attentionMask);
            Tensor pooled = bert.pool(bert.forward(inputIds, attentionMask, tokenTypeIds, skip));
            return child("classifier").forward(child("dropout").forward(pooled)).keep();
        }
    }
}
