package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.Arrays;

/**
 * LoRA around a linear layer: {@code y = base(x) + s·(dropout(x)·Aᵀ)·Bᵀ} with A (r, in) and
 * B (out, r) held as PEFT holds them ({@code lora_A.weight}, {@code lora_B.weight}). The base
 * is a {@link Linear} or any module with a 2-d {@code weight}: (out, in), or (in, out) with
 * {@code fanInFanOut} (GPT-2's Conv1D). See {@link LoraLayer} for merging.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraLinear extends LoraLayer {

    private final long inFeatures;
    private final long outFeatures;

    public LoraLinear(Module base, LoraConfig config) {
        super(base, config);
        Tensor w = base.parameter("weight");
        if (w == null || w.dim() != 2) {
            throw new IllegalArgumentException("LoraLinear needs a base layer with a 2-d weight, got "
                    + (w == null ? "none" : Arrays.toString(w.shape())));
        }
        inFeatures = config.fanInFanOut() ? w.size(0) : w.size(1);
        outFeatures = config.fanInFanOut() ? w.size(1) : w.size(0);
        int r = config.r();
        Linear a = registerModule("lora_A", new Linear(inFeatures, r, false));
        Linear b = registerModule("lora_B", new Linear(r, outFeatures, false));
        initFactors(config, a.weight(), b.weight());
        if (config.loraDropout() > 0) registerModule("lora_dropout", new Dropout(config.loraDropout()));
    }

    static void initFactors(LoraConfig config, Tensor a, Tensor b) {
        try (var ng = Torch.noGrad()) {
            switch (config.init()) {
                case DEFAULT -> Init.kaimingUniform_(a, Math.sqrt(5));
                case GAUSSIAN -> Init.normal_(a, 0, 1.0 / config.r());
                case NORMAL -> Init.normal_(a, 0, 1);
            }
            Init.zeros_(b);
        }
    }

    public long inFeatures() {
        return inFeatures;
    }

    public long outFeatures() {
        return outFeatures;
    }

    /** A, shape (r, in). */
    public Tensor loraA() {
        return ((Linear) child("lora_A")).weight();
    }

    /** B, shape (out, r). */
    public Tensor loraB() {
        return ((Linear) child("lora_B")).weight();
    }

    @Override
    protected Tensor baseWeight() {
        return baseLayer().parameter("weight");
    }

    @Override
    protected Tensor loraForward(Tensor input) {
        Module dropout = children().get("lora_dropout");
        Tensor x = dropout == null ? input : dropout.forward(input);
        try (Tensor down = child("lora_A").forward(x); Tensor up = child("lora_B").forward(down)) {
            return up.mul(scaling());
        } finally {
            if (x != input) x.close();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype) {
        try (var ng = Torch.noGrad(); var scope = dev.lora4j.TensorScope.open()) {
            Tensor d = loraB().to(dtype).matmul(loraA().to(dtype)).mul(scaling());
            return maybeTranspose(d).contiguous().keep();
        }
    }
}
