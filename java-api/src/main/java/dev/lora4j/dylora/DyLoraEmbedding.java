package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;

/**
 * DyLoRA around an embedding: at rank b, {@code y = base(ids) + (α/b)·embedding(ids, A[:b]ᵀ)·B[:, :b]ᵀ}
 * with {@code lora_A} (r_max, num_embeddings) zeros and {@code lora_B} (dim, r_max) ~ N(0, 1),
 * as PEFT initialises embedding adapters. See {@link DyLoraLayer}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class DyLoraEmbedding extends DyLoraLayer {

    public DyLoraEmbedding(Embedding base, LoraConfig config) {
        super(base, config);
        setFactors(Tensor.zeros(factorType(), config.r(), base.numEmbeddings()),
                Init.normal_(Tensor.empty(factorType(), base.embeddingDim(), config.r()), 0, 1));
    }

    @Override
    protected Tensor baseWeight() {
        return ((Embedding) baseLayer()).weight();
    }

    @Override
    protected Tensor forwardWith(Tensor ids, Tensor a, Tensor b) {
        try (Tensor at = a.t(); Tensor rows = Functional.embedding(ids, at, ((Embedding) baseLayer()).paddingIdx());
             Tensor bt = b.t()) {
            return rows.matmul(bt);
        }
    }

    @Override
    protected Tensor deltaWith(Tensor a, Tensor b) {
        try (Tensor ba = b.matmul(a)) {
            return ba.t();
        }
    }
}
