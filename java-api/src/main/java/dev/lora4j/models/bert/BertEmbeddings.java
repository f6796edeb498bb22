package dev.lora4j.models.bert;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.LayerNorm;
import dev.lora4j.nn.Module;
import java.util.Arrays;

/**
 * HF's {@code BertEmbeddings}: {@code LayerNorm(word_embeddings(ids) + position_embeddings(pos)
 * + token_type_embeddings(types))} then dropout, with absolute positions 0..seq-1. Children:
 * {@code word_embeddings}, {@code position_embeddings}, {@code token_type_embeddings},
 * {@code LayerNorm}, {@code dropout}. Ownership and threads: as every {@link Module}.
 */
public class BertEmbeddings extends Module {

    private final BertConfig config;

    public BertEmbeddings(BertConfig config) {
        this.config = config;
        registerModule("word_embeddings", config.padTokenId() < 0 ? new Embedding(config.vocabSize(), config.hiddenSize())
                : new Embedding(config.vocabSize(), config.hiddenSize(), config.padTokenId()));
        registerModule("position_embeddings", new Embedding(config.maxPositionEmbeddings(), config.hiddenSize()));
        registerModule("token_type_embeddings", new Embedding(config.typeVocabSize(), config.hiddenSize()));
        registerModule("LayerNorm", new LayerNorm(config.hiddenSize(), config.layerNormEps()));
        registerModule("dropout", new Dropout(config.hiddenDropoutProb()));
    }

    /** Embeddings of input ids (batch, seq) with token types 0. */
    @Override
    public Tensor forward(Tensor inputIds) {
        return forward(inputIds, null);
    }

    /** Embeddings (batch, seq, hidden) of input ids (batch, seq); tokenTypeIds null means all 0. */
    public Tensor forward(Tensor inputIds, Tensor tokenTypeIds) {
        if (inputIds == null || inputIds.dim() != 2 || inputIds.dtype() != DType.INT64) {
            throw new IllegalArgumentException("input_ids must be an int64 (batch, seq) tensor, got "
                    + (inputIds == null ? "null" : inputIds.dtype() + " " + Arrays.toString(inputIds.shape())));
        }
        long seq = inputIds.size(1);
        if (seq > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("sequence length " + seq + " exceeds max_position_embeddings " + config.maxPositionEmbeddings());
        }
        if (tokenTypeIds != null && (!Arrays.equals(tokenTypeIds.shape(), inputIds.shape()) || tokenTypeIds.dtype() != DType.INT64)) {
            throw new IllegalArgumentException("token_type_ids must be int64 of input_ids' shape " + Arrays.toString(inputIds.shape()));
        }
        try (var scope = TensorScope.open()) {
            Tensor types = tokenTypeIds != null ? tokenTypeIds : Tensor.zeros(DType.INT64, inputIds.shape());
            Tensor positions = Tensor.arange(0, seq, 1, DType.INT64).unsqueeze(0);
            Tensor sum = child("word_embeddings").forward(inputIds)
                    .add(child("token_type_embeddings").forward(types))
                    .add(child("position_embeddings").forward(positions));
            return child("dropout").forward(child("LayerNorm").forward(sum)).keep();
        }
    }
}
