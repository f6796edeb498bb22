package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;

/**
 * A lookup table, as {@code nn.Embedding}: weight (num_embeddings, embedding_dim) ~ N(0, 1),
 * with the row at {@code paddingIdx} (if any) zeroed and left out of gradients.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Embedding extends Module {

    private final long numEmbeddings;
    private final long embeddingDim;
    private final long paddingIdx;

    public Embedding(long numEmbeddings, long embeddingDim) {
        this(numEmbeddings, embeddingDim, -1);
    }

    /**
     * {@code paddingIdx} -1 means none; other negative values count from the end (PyTorch
     * accepts -num_embeddings..num_embeddings-1; -1 here means none, not the last row).
     */
    public Embedding(long numEmbeddings, long embeddingDim, long paddingIdx) {
        if (numEmbeddings < 1 || embeddingDim < 1) throw new IllegalArgumentException("Embedding needs sizes >= 1");
        long pad = Functional.paddingIndex(paddingIdx, numEmbeddings);
        this.numEmbeddings = numEmbeddings;
        this.embeddingDim = embeddingDim;
        this.paddingIdx = pad;
        Tensor w = Init.normal_(Tensor.empty(numEmbeddings, embeddingDim), 0, 1);
        if (pad >= 0) {
            try (var ng = Torch.noGrad(); Tensor row = w.narrow(0, pad, 1)) {
                row.zero_();
            }
        }
        registerParameter("weight", w.requiresGrad_(true));
    }

    public long numEmbeddings() {
        return numEmbeddings;
    }

    public long embeddingDim() {
        return embeddingDim;
    }

    /** The padding index, or -1. */
    public long paddingIdx() {
        return paddingIdx;
    }

    /** The stored weight (the original when parametrized); owned by the layer. */
    public Tensor weight() {
        return storedParameter("weight");
    }

    @Override
    public Tensor forward(Tensor indices) {
        return withParameter("weight", w -> Functional.embedding(indices, w, paddingIdx));
    }

    @Override
    protected String extraRepr() {
        return numEmbeddings + ", " + embeddingDim + (paddingIdx >= 0 ? ", padding_idx=" + paddingIdx : "");
    }
}
