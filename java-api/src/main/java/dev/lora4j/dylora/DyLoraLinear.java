package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Module;
import java.util.Arrays;

/**
 * DyLoRA around a linear layer: at rank b, {@code y = base(x) + (α/b)·(dropout(x)·A[:b]ᵀ)·B[:, :b]ᵀ}
 * with {@code lora_A} (r_max, in) and {@code lora_B} (out, r_max). The base is a
 * {@link dev.lora4j.nn.Linear} or any module with a 2-d weight ((in, out) with fan_in_fan_out).
 * See {@link DyLoraLayer}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class DyLoraLinear extends DyLoraLayer {

    public DyLoraLinear(Module base, LoraConfig config) {
        super(base, config);
        Tensor w = base.parameter("weight");
        if (w == null || w.dim() != 2) {
            throw new IllegalArgumentException("DyLoraLinear needs a base layer with a 2-d weight, got "
                    + (w == null ? "none" : Arrays.toString(w.shape())));
        }
        boolean fanInFanOut = config().fanInFanOut();
        long in = fanInFanOut ? w.size(0) : w.size(1);
        long out = fanInFanOut ? w.size(1) : w.size(0);
        setFactors(initA(Tensor.empty(factorType(), config.r(), in), config.r()), Tensor.zeros(factorType(), out, config.r()));
        if (config.loraDropout() > 0) registerModule("lora_dropout", new Dropout(config.loraDropout()));
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
