package dev.lora4j.examples.text;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.Objects;

/**
 * A sentence classifier over a BERT encoder, as sentence-transformers models are used for
 * classification: {@code bert} (a {@link BertModel}, no pooler), the mean of its last hidden
 * state over unmasked tokens ({@link SentenceEmbeddings#meanPooling}), and {@code classifier}
 * (Linear hidden → labels). The children's names make the state dict keys
 * {@code bert.encoder.layer.0.attention.self.query.weight} and {@code classifier.weight}, so a
 * PEFT adapter of it has the keys PEFT writes for a Python module with the same two attributes
 * ({@code base_model.model.bert.encoder...lora_A.weight}, {@code base_model.model.classifier.weight}
 * for {@code modules_to_save=["classifier"]}). The text fine-tune trains it and the
 * {@code /classify} service serves it (its shared trunk is {@link #sharing}, the heads per tenant),
 * so a fine-tuned adapter folder is served as it was trained.
 *
 * <p>all-MiniLM-L6-v2 has no pooler (its ONNX export drops it), so HF's
 * {@code BertForSequenceClassification}, which classifies the pooler's output, would start from
 * a random pooler; mean pooling is what the model was trained for.
 *
 * <p>Its encoder runs on the real tokens alone ({@link BertModel#forward(Tensor, Tensor, Tensor, boolean)},
 * see {@link BertModel#skipPadding}; the encoder's own setting is left as it is): the mean over
 * real tokens is all it reads, so padded positions are not computed; losses, gradients (without
 * dropout) and embeddings stay what they are with them.
 *
 * <p>Ownership: owns the encoder it is given and its classifier; {@link #close()} frees both.
 * Threads: as {@link BertModel} (forwards from many threads in eval mode; training single-threaded).
 */
public final class MeanPoolingClassifier extends Module {

    /** Wraps {@code bert} (taking ownership) with a freshly initialised classifier to {@code numLabels} classes. */
    public MeanPoolingClassifier(BertModel bert, int numLabels) {
        this(bert, new Linear(Objects.requireNonNull(bert, "bert").config().hiddenSize(), checkLabels(numLabels)));
    }

    /** Wraps {@code bert} and {@code classifier} (taking ownership of both); a null classifier leaves the model a trunk. */
    public MeanPoolingClassifier(BertModel bert, Linear classifier) {
        registerModule("bert", Objects.requireNonNull(bert, "bert"));
        if (classifier != null) registerModule("classifier", classifier);
    }

    /** The encoder alone, for a service that applies each tenant's head itself ({@link #embed} only). */
    public static MeanPoolingClassifier sharing(BertModel bert) {
        return new MeanPoolingClassifier(bert, (Linear) null);
    }

    private static int checkLabels(int numLabels) {
        if (numLabels < 2) throw new IllegalArgumentException("numLabels must be >= 2, got " + numLabels);
        return numLabels;
    }

    public BertModel bert() {
        return (BertModel) child("bert");
    }

    public Linear classifier() {
        return (Linear) child("classifier");
    }

    /** Logits of input ids with no padding. */
    @Override
    public Tensor forward(Tensor inputIds) {
        try (Tensor mask = Tensor.ones(dev.lora4j.DType.INT64, inputIds.shape())) {
            return forward(inputIds, mask);
        }
    }

    /** Logits (batch, labels) of input ids and attention mask (batch, seq). */
    public Tensor forward(Tensor inputIds, Tensor attentionMask) {
        return forward(inputIds, attentionMask, null);
    }

    /** Logits (batch, labels) of input ids, attention mask and token types (null: all 0). */
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        try (TensorScope scope = TensorScope.open()) {
            return classifier().forward(embed(inputIds, attentionMask, tokenTypeIds)).keep();
        }
    }

    /** The mean-pooled sentence embeddings (batch, hidden), before the classifier. */
    public Tensor embed(Tensor inputIds, Tensor attentionMask) {
        return embed(inputIds, attentionMask, null);
    }

    /** The mean-pooled sentence embeddings (batch, hidden) of input ids, attention mask and token types (null: all 0). */
    public Tensor embed(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        try (TensorScope scope = TensorScope.open()) {
            // Only the real tokens are pooled: the encoder skips the padding (BertModel.skipPadding).
            Tensor hidden = bert().forward(inputIds, attentionMask, tokenTypeIds, true);
            return SentenceEmbeddings.meanPooling(hidden, attentionMask).keep();
        }
    }
}
