package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.ParameterDict;

/**
 * LoRA around an embedding, as PEFT's: {@code y = base(ids) + s·embedding(ids, Aᵀ)·Bᵀ} with
 * {@code lora_embedding_A.<name>} (r, num_embeddings) and {@code lora_embedding_B.<name>} (dim, r) per adapter; the
 * update of the table is ΔW = s·(B·A)ᵀ (num_embeddings, dim). Init as PEFT's (default and
 * gaussian alike): A zeros, B N(0,1); with the seed's NORMAL init, A N(0,1) and B zeros.
 * No dropout (as PEFT). The factors take the table's dtype (float32 for a float16/bfloat16
 * table, whose LoRA rows are then rounded once into the output). See {@link LoraLayer} for named adapters and merging.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraEmbedding extends LoraLayer {

    private final ParameterDict loraA;
    private final ParameterDict loraB;

    /** Wraps {@code base} with one adapter, {@value LoraLayer#DEFAULT_ADAPTER}. */
    public LoraEmbedding(Embedding base, LoraConfig config) {
        this(base, DEFAULT_ADAPTER, config);
    }

    /** Wraps {@code base} with one adapter named {@code adapterName}. */
    public LoraEmbedding(Embedding base, String adapterName, LoraConfig config) {
        super(base);
        loraA = registerModule("lora_embedding_A", new ParameterDict());
        loraB = registerModule("lora_embedding_B", new ParameterDict());
        addAdapter(adapterName, config);
    }

    @Override
    protected void createAdapter(String name, LoraConfig config) {
        int r = config.r();
        DType dtype = factorType();
        Tensor a = loraA.put(name, Tensor.zeros(dtype, r, base().numEmbeddings()).requiresGrad_(true));
        Tensor b = loraB.put(name, Tensor.zeros(dtype, base().embeddingDim(), r).requiresGrad_(true));
        try (var ng = Torch.noGrad()) {
            // PEFT initialises embedding adapters this way for both its default and "gaussian".
            switch (config.init()) {
                case DEFAULT, GAUSSIAN -> Init.normal_(b, 0, 1);
                case NORMAL -> Init.normal_(a, 0, 1);
            }
        }
    }

    @Override
    protected void destroyAdapter(String name) {
        loraA.remove(name).close();
        loraB.remove(name).close();
    }

    private Embedding base() {
        return (Embedding) baseLayer();
    }

    /** A of adapter {@code name}, shape (r, num_embeddings). */
    @Override
    public Tensor loraA(String name) {
        config(name);
        return loraA.get(name);
    }

    /** B of adapter {@code name}, shape (embedding_dim, r). */
    @Override
    public Tensor loraB(String name) {
        config(name);
        return loraB.get(name);
    }

    @Override
    protected Tensor baseWeight() {
        return base().weight();
    }

    @Override
    protected Tensor loraForward(Tensor ids, String name) {
        try (TensorScope s = TensorScope.open()) {
            Tensor rows = Functional.embedding(ids, loraA(name).t(), base().paddingIdx());
            return rows.matmul(loraB(name).t()).mul(scaling(name)).keep();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype, String name) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            return loraB(name).to(dtype).matmul(loraA(name).to(dtype)).t().mul(scaling(name)).contiguous().keep();
        }
    }
}
