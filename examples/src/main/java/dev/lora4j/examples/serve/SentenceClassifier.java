package dev.lora4j.examples.serve;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;

/**
 * One tenant's text classifier over a shared sentence encoder: {@code bert} (all-MiniLM-L6-v2's
 * {@link BertModel}, with the tenant's LoRA adapter on its attention) and {@code classifier}, a
 * Linear from the sentence embedding (sentence-transformers' mean pooling over the unmasked
 * tokens, then L2 normalisation: {@link SentenceEmbeddings#encode}) to the tenant's labels.
 * MiniLM has no pooler, hence the mean-pooled embedding rather than HF's pooled [CLS] of
 * {@code BertForSequenceClassification}. A tenant's PEFT folder holds the LoRA factors
 * ({@code base_model.model.bert.encoder.layer.N.attention.self.query.lora_A.weight}, ...) and
 * the classifier as {@code modules_to_save} ({@code base_model.model.classifier.weight}).
 *
 * <p>Ownership: the module owns its children and frees them on {@link #close()}. Threads: as
 * {@link BertModel} (many forwards at once in eval mode).
 */
public final class SentenceClassifier extends Module {

    public SentenceClassifier(BertModel bert, Linear classifier) {
        registerModule("bert", bert);
        if (classifier != null) registerModule("classifier", classifier);
    }

    /** A model with only the encoder: the shared base the service serves (heads are per tenant). */
    public static SentenceClassifier sharing(BertModel bert) {
        return new SentenceClassifier(bert, null);
    }

    public BertModel bert() {
        return (BertModel) child("bert");
    }

    /** The sentence embeddings (batch, hidden) of a tokenized batch. */
    public Tensor embed(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        try (var scope = TensorScope.open()) {
            return SentenceEmbeddings.encode(bert().forward(inputIds, attentionMask, tokenTypeIds), attentionMask).keep();
        }
    }

    /** Logits (batch, labels) of a tokenized batch. */
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        try (var scope = TensorScope.open()) {
            return child("classifier").forward(embed(inputIds, attentionMask, tokenTypeIds)).keep();
        }
    }

    @Override
    public Tensor forward(Tensor inputIds) {
        throw new UnsupportedOperationException("use forward(inputIds, attentionMask, tokenTypeIds)");
    }
}
