package dev.lora4j.models.bert;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.PackedTokens;
import java.util.Arrays;

/**
 * A BERT encoder with Hugging Face's layout ({@code BertModel}): {@code embeddings},
 * {@code encoder.layer.N}, and an optional {@code pooler.dense}; {@link #stateDict()} keys are
 * exactly HF's ({@code encoder.layer.0.attention.self.query.weight}, ...), so HF checkpoints
 * load as they are ({@link BertLoader#bertModel}) and PEFT adapter keys match.
 *
 * <p>{@link #forward(Tensor, Tensor, Tensor)} gives {@code last_hidden_state} (batch, seq,
 * hidden); the padding mask is added to the attention scores as the dtype's lowest value, as
 * HF does. Ownership: the model owns its parameters and frees them on {@link #close()}.
 * Threads: an eval-mode model may run forwards from many threads; training and changes are
 * single-threaded.
 */
public class BertModel extends Module {

    private final BertConfig config;
    private volatile boolean skipPadding;

    public BertModel(BertConfig config, boolean addPoolingLayer) {
        this.config = java.util.Objects.requireNonNull(config, "config");
        registerModule("embeddings", new BertEmbeddings(config));
        registerModule("encoder", new BertEncoder(config));
        if (addPoolingLayer) registerModule("pooler", new Pooler(config));
    }

    /** HF's {@code BertPooler}: {@code tanh(dense(hidden[:, 0]))}. */
    public static final class Pooler extends Module {
        Pooler(BertConfig c) {
            registerModule("dense", new Linear(c.hiddenSize(), c.hiddenSize()));
        }

        /** hidden (batch, seq, hidden) → (batch, hidden). */
        @Override
        public Tensor forward(Tensor hidden) {
            try (var scope = TensorScope.open()) {
                return child("dense").forward(hidden.narrow(1, 0, 1).squeeze(1)).tanh().keep();
            }
        }
    }

    public BertConfig config() {
        return config;
    }

    public boolean hasPooler() {
        return children().containsKey("pooler");
    }

    /** last_hidden_state of input ids (batch, seq) with no padding and token types 0. */
    @Override
    public Tensor forward(Tensor inputIds) {
        return forward(inputIds, null, null);
    }

    /**
     * last_hidden_state (batch, seq, hidden) of {@code inputIds} (batch, seq, int64);
     * {@code attentionMask} (batch, seq) of 1 (token) and 0 (padding), any integer, boolean or
     * floating dtype, or null for all ones; {@code tokenTypeIds} (batch, seq) or null for 0.
     */
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) {
        return forward(inputIds, attentionMask, tokenTypeIds, skipPadding);
    }

    /**
     * As {@link #forward(Tensor, Tensor, Tensor)}, on the real tokens alone when {@code skipPadding}
     * (see {@link #skipPadding(boolean)}) whatever this model's setting.
     */
    public Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds, boolean skipPadding) {
        try (var scope = TensorScope.open()) {
            Tensor h = ((BertEmbeddings) child("embeddings")).forward(inputIds, tokenTypeIds);
            Tensor mask = attentionMask == null ? null : extendedMask(attentionMask, inputIds, h.dtype());
            BertEncoder encoder = (BertEncoder) child("encoder");
            if (mask != null && skipPadding) {
                PackedTokens layout = PackedTokens.of(attentionMask); // owned by the scope
                if (layout.hasPadding() && layout.tokens() > 0) { // no real token at all: nothing to pack
                    return layout.unpack(encoder.forward(layout.pack(h), mask, layout)).keep();
                }
            }
            return encoder.forward(h, mask).keep();
        }
    }

    /**
     * Whether {@link #forward(Tensor, Tensor, Tensor)} runs the encoder on the real tokens of a
     * padded batch alone: the projections, feed-forward layers and LayerNorms skip the padded
     * positions (a quarter to a half of a batch of real text), only attention sees the padded
     * layout. Real positions get what they get without it (to float rounding); padded positions
     * of {@code last_hidden_state} are zero, as with PyTorch's
     * {@code TransformerEncoder(enable_nested_tensor=True)}, where Hugging Face returns values
     * that mean pooling with the mask never reads. The pooler reads position 0, a real token
     * when the batch is padded on the right as BERT's tokenizers pad;
     * {@link BertForSequenceClassification} runs a batch padded on the left without skipping.
     * Without dropout (eval mode) gradients are those of the padded forward for any loss that
     * reads real positions only; with dropout they are as random, drawn for fewer positions.
     * Off by default, so that {@code last_hidden_state} is Hugging Face's at every position;
     * {@link #forward(Tensor, Tensor, Tensor, boolean)} chooses per call.
     */
    public BertModel skipPadding(boolean on) {
        this.skipPadding = on;
        return this;
    }

    /** See {@link #skipPadding(boolean)}. */
    public boolean skipsPadding() {
        return skipPadding;
    }

    /** The pooler's output (batch, hidden) for a last hidden state. */
    public Tensor pool(Tensor lastHiddenState) {
        if (!hasPooler()) throw new IllegalStateException("this BertModel has no pooler (built with addPoolingLayer = false)");
        return child("pooler").forward(lastHiddenState);
    }

    /** (1 - mask)[:, None, None, :] · lowest(dtype), as HF's get_extended_attention_mask. */
    static Tensor extendedMask(Tensor attentionMask, Tensor inputIds, DType dtype) {
        if (!Arrays.equals(attentionMask.shape(), inputIds.shape())) {
            throw new IllegalArgumentException("attention_mask must have input_ids' shape " + Arrays.toString(inputIds.shape())
                    + ", got " + Arrays.toString(attentionMask.shape()));
        }
        double lowest = dtype == DType.FLOAT64 ? -Double.MAX_VALUE : -Float.MAX_VALUE;
        return attentionMask.to(dtype).neg().add(1).mul(lowest).unsqueeze(1).unsqueeze(1);
    }
}
