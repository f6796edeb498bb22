package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;

/**
 * LoRA around an embedding, as PEFT's: {@code y = base(ids) + s·embedding(ids, Aᵀ)·Bᵀ} with
 * {@code lora_embedding_A} (r, num_embeddings) and {@code lora_embedding_B} (dim, r); the
 * update of the table is ΔW = s·(B·A)ᵀ (num_embeddings, dim). Init as PEFT's (default and
 * gaussian alike): A zeros, B N(0,1); with the seed's NORMAL init, A N(0,1) and B zeros.
 * No dropout (as PEFT). See {@link LoraLayer} for merging.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraEmbedding extends LoraLayer {

    public LoraEmbedding(Embedding base, LoraConfig config) {
        super(base, config);
        int r = config.r();
        Tensor a = registerParameter("lora_embedding_A", Tensor.zeros(r, base.numEmbeddings()).requiresGrad_(true));
        Tensor b = registerParameter("lora_embedding_B", Tensor.zeros(base.embeddingDim(), r).requiresGrad_(true));
        try (var ng = Torch.noGrad()) {
            // PEFT initialises embedding adapters this way for both its default and "gaussian".
            switch (config.init()) {
                case DEFAULT, GAUSSIAN -> Init.normal_(b, 0, 1);
                case NORMAL -> Init.normal_(a, 0, 1);
            }
        }
    }

    private Embedding base() {
        return (Embedding) baseLayer();
    }

    /** A, shape (r, num_embeddings). */
    public Tensor loraA() {
        return parameter("lora_embedding_A");
    }

    /** B, shape (embedding_dim, r). */
    public Tensor loraB() {
        return parameter("lora_embedding_B");
    }

    @Override
    protected Tensor baseWeight() {
        return base().weight();
    }

    @Override
    protected Tensor loraForward(Tensor ids) {
        try (TensorScope s = TensorScope.open()) {
            Tensor rows = Functional.embedding(ids, loraA().t(), base().paddingIdx());
            return rows.matmul(loraB().t()).mul(scaling()).keep();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            return loraB().to(dtype).matmul(loraA().to(dtype)).t().mul(scaling()).contiguous().keep();
        }
    }
}
