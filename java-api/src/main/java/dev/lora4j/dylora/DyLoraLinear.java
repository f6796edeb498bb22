package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Module;
import java.util.Arrays;

/**
 * DyLoRA around a linear layer: at rank b, {@code y = base(x) + (α/b)·(dropout(x)·A[:b]ᵀ)·B[:, :b]ᵀ}
 * with {@code lora_A} (r_max, in) and {@code lora_B} (out, r_max). The base is a
 * {@link dev.lora4j.nn.Linear} or any module with a 2-d weight ((in, out) with fan_in_fan_out).
 * See {@link DyLoraLayer}.
 */
public class DyLoraLinear extends DyLoraLayer {

    public DyLoraLinear(Module base, LoraConfig config) {
        super(base, config);
        Tensor w = base.parameter("weight");
        if (w == null || w.dim() != 2) {
            throw new IllegalArgumentException("DyLoraLinear needs a base layer with a 2-d weight, got "
                    + (w == null ? "none" : Arrays.toString(w.shape())));
        }
        long in = config.fanInFanOut() ? w.size(0) : w.size(1);
        long out = config.fanInFanOut() ? w.size(1) : w.size(0);
        Tensor a = Tensor.empty(config.r(), in);
        try (var ng = Torch.noGrad()) {
            switch (config.init()) {
                case DEFAULT -> Init.kaimingUniform_(a, Math.sqrt(5));
                case GAUSSIAN -> Init.normal_(a, 0, 1.0 / config.r());
                case NORMAL -> Init.normal_(a, 0, 1);
            }
        }
        registerParameter("lora_A", a.requiresGrad_(true));
        registerParameter("lora_B", Tensor.zeros(out, config.r()).requiresGrad_(true));
        if (config.loraDropout() > 0) registerModule("lora_dropout", new Dropout(config.loraDropout()));
    }

    @Override
    public Tensor loraA() {
        return parameter("lora_A");
    }

    @Override
    public Tensor loraB() {
        return parameter("lora_B");
    }

    @Override
    protected void replaceFactors(Tensor a, Tensor b) {
        registerParameter("lora_A", a);
        registerParameter("lora_B", b);
    }

    @Override
    protected Tensor baseWeight() {
        return baseLayer().parameter("weight");
    }

    @Override
    protected Tensor forwardWith(Tensor x, Tensor a, Tensor b) {
        try (Tensor down = Functional.linear(x, a, null)) {
            return Functional.linear(down, b, null);
        }
    }

    @Override
    protected Tensor deltaWith(Tensor a, Tensor b) {
        return maybeTranspose(b.matmul(a));
    }
}
