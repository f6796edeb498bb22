package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;

/**
 * Multi-head self-attention with separate projections, laid out as Hugging Face's
 * {@code BertSelfAttention}: children {@code query}, {@code key} and {@code value} (each a
 * {@link Linear} hidden → hidden with bias), {@code numHeads} heads of size hidden/numHeads,
 * {@code softmax(Q·Kᵀ/√d + mask)·V} per head through
 * {@link Functional#scaledDotProductAttention}, dropout on the attention weights while
 * training. The heads are concatenated back to (batch, seq, hidden); the output projection is
 * not part of this module (HF keeps it in {@code attention.output.dense}).
 *
 * <p>The projections are looked up by name at every forward, so LoRA surgery on
 * {@code query}/{@code value} takes effect. Ownership and threads: as every {@link Module}.
 */
public class MultiHeadSelfAttention extends Module {

    private final long hiddenSize;
    private final long numHeads;
    private final double dropout;

    public MultiHeadSelfAttention(long hiddenSize, long numHeads, double dropout) {
        if (hiddenSize < 1 || numHeads < 1 || hiddenSize % numHeads != 0) {
            throw new IllegalArgumentException("MultiHeadSelfAttention: hidden size " + hiddenSize
                    + " must be a positive multiple of the number of heads " + numHeads);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException("MultiHeadSelfAttention: dropout must be in [0, 1), got " + dropout);
        }
        this.hiddenSize = hiddenSize;
        this.numHeads = numHeads;
        this.dropout = dropout;
        registerModule("query", new Linear(hiddenSize, hiddenSize));
        registerModule("key", new Linear(hiddenSize, hiddenSize));
        registerModule("value", new Linear(hiddenSize, hiddenSize));
    }

    public long hiddenSize() {
        return hiddenSize;
    }

    public long numHeads() {
        return numHeads;
    }

    /** Attention over all positions (no mask); input (batch, seq, hidden). */
    @Override
    public Tensor forward(Tensor input) {
        return forward(input, null);
    }

    /**
     * Attention of input (batch, seq, hidden) with {@code mask}: null, boolean (true = may be
     * attended) or additive of the input's dtype, broadcastable to (batch, heads, seq, seq), as
     * {@link Functional#scaledDotProductAttention} takes it. Returns (batch, seq, hidden).
     */
    public Tensor forward(Tensor input, Tensor mask) {
        if (input == null || input.dim() != 3 || input.size(2) != hiddenSize) {
            throw new IllegalArgumentException("MultiHeadSelfAttention: input must be (batch, seq, " + hiddenSize + "), got "
                    + (input == null ? "null" : java.util.Arrays.toString(input.shape())));
        }
        long b = input.size(0);
        long s = input.size(1);
        try (var scope = TensorScope.open()) {
            Tensor q = heads(child("query").forward(input), b, s);
            Tensor k = heads(child("key").forward(input), b, s);
            Tensor v = heads(child("value").forward(input), b, s);
            Tensor ctx = Functional.scaledDotProductAttention(q, k, v, mask, isTraining() ? dropout : 0, false);
            return ctx.transpose(1, 2).reshape(b, s, hiddenSize).keep();
        }
    }

    /**
     * The same attention on the real tokens of a padded batch: {@code tokens} is
     * (tokens, hidden), {@code layout}'s packed form of (batch, seq, hidden). The projections
     * run on the real tokens only; the heads attend in the padded layout with {@code mask} as
     * in {@link #forward(Tensor, Tensor)}, which must keep padded keys out (required when the
     * batch has padding). Returns (tokens, hidden), equal to the real positions of the padded
     * forward. Runs inside {@link PackedTokens#run}, so a mixed LoRA batch gives each token its
     * row's adapter.
     */
    public Tensor forward(Tensor tokens, Tensor mask, PackedTokens layout) {
        java.util.Objects.requireNonNull(layout, "layout");
        if (tokens == null || tokens.dim() != 2 || tokens.size(0) != layout.tokens() || tokens.size(1) != hiddenSize) {
            throw new IllegalArgumentException("MultiHeadSelfAttention: packed input must be (" + layout.tokens() + ", " + hiddenSize
                    + "), got " + (tokens == null ? "null" : java.util.Arrays.toString(tokens.shape())));
        }
        if (mask == null && layout.hasPadding()) {
            throw new IllegalArgumentException("MultiHeadSelfAttention: packed tokens of a padded batch need the mask that keeps the padding out");
        }
        long b = layout.batch();
        long s = layout.seq();
        return layout.run(() -> {
            try (var scope = TensorScope.open()) {
                Tensor q = heads(layout.unpack(child("query").forward(tokens)), b, s);
                Tensor k = heads(layout.unpack(child("key").forward(tokens)), b, s);
                Tensor v = heads(layout.unpack(child("value").forward(tokens)), b, s);
                Tensor ctx = Functional.scaledDotProductAttention(q, k, v, mask, isTraining() ? dropout : 0, false);
                return layout.pack(ctx.transpose(1, 2).reshape(b, s, hiddenSize)).keep();
            }
        });
    }

    private Tensor heads(Tensor x, long b, long s) {
        return x.view(b, s, numHeads, hiddenSize / numHeads).transpose(1, 2);
    }

    @Override
    protected String extraRepr() {
        return "hidden_size=" + hiddenSize + ", num_heads=" + numHeads + ", dropout=" + dropout;
    }
}
