package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.util.Arrays;

/**
 * Sentence embeddings as sentence-transformers computes them for MiniLM-style models: the mean
 * of the last hidden state over unmasked tokens, then L2 normalisation. Stateless, thread-safe;
 * results belong to the caller.
 */
public final class SentenceEmbeddings {

    private SentenceEmbeddings() {}

    /** Mean over the tokens whose mask is non-zero: hidden (batch, seq, dim), mask (batch, seq) → (batch, dim). */
    public static Tensor meanPooling(Tensor lastHiddenState, Tensor attentionMask) {
        long[] h = lastHiddenState.shape();
        if (h.length != 3 || !Arrays.equals(attentionMask.shape(), new long[] {h[0], h[1]})) {
            throw new IllegalArgumentException("meanPooling: hidden (batch, seq, dim) and mask (batch, seq) do not fit: "
                    + Arrays.toString(h) + ", " + Arrays.toString(attentionMask.shape()));
        }
        try (var scope = TensorScope.open()) {
            Tensor m = attentionMask.to(lastHiddenState.dtype()).unsqueeze(2);
            Tensor sum = lastHiddenState.mul(m).sum(new int[] {1}, false);
            // sentence-transformers clamps the count at 1e-9.
            Tensor count = atLeast(m.sum(new int[] {1}, false), 1e-9);
            return sum.div(count).keep();
        }
    }

    /** Each row divided by its L2 norm (at least 1e-12, as F.normalize). */
    public static Tensor normalize(Tensor embeddings) {
        try (var scope = TensorScope.open()) {
            Tensor norm = atLeast(embeddings.pow(2).sum(new int[] {-1}, true).sqrt(), 1e-12);
            return embeddings.div(norm).keep();
        }
    }

    /** max(x, floor) elementwise, as relu(x - floor) + floor. */
    private static Tensor atLeast(Tensor x, double floor) {
        return x.sub(floor).relu().add(floor);
    }

    /** {@link #normalize}({@link #meanPooling}(hidden, mask)). */
    public static Tensor encode(Tensor lastHiddenState, Tensor attentionMask) {
        try (Tensor pooled = meanPooling(lastHiddenState, attentionMask)) {
            return normalize(pooled);
        }
    }
}
