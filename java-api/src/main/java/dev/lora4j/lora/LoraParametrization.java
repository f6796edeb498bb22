package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Parametrization;
import dev.lora4j.nn.Parametrize;
import java.util.Arrays;

/**
 * LoRA as a parametrization of a weight (seed 000's {@code LoRAParametrization}): the weight
 * W (rows, cols...) becomes {@code W + s·(B·A).view(W.shape)} with A (r, cols·...) ~ N(0, 1)
 * and B (rows, r) zeros, s = α/r. {@link #setEnabled} switches the update off without
 * removing it. Register it with {@link #register(Module, int, double)} and remove it with
 * {@link Parametrize#removeParametrizations} (keeping or dropping the update).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraParametrization extends Parametrization {

    private final double scale;
    private volatile boolean enabled = true;

    /** For a float32 weight of shape {@code weightShape}, rank {@code r} and α {@code alpha}. */
    public LoraParametrization(long[] weightShape, int r, double alpha) {
        this(weightShape, dev.lora4j.DType.FLOAT32, r, alpha);
    }

    /**
     * For a weight of shape {@code weightShape} and dtype {@code weightType}: the factors take
     * {@link LoraLayer#factorType(dev.lora4j.DType)} (the weight's dtype, float32 for
     * float16/bfloat16 weights, whose sum is rounded once back to the weight's dtype).
     */
    public LoraParametrization(long[] weightShape, dev.lora4j.DType weightType, int r, double alpha) {
        if (!(alpha > 0) || Double.isInfinite(alpha)) throw new IllegalArgumentException("alpha must be finite and > 0, got " + alpha);
        if (r < 1) throw new IllegalArgumentException("LoRA rank r must be >= 1, got " + r);
        if (weightShape.length < 2) {
            throw new IllegalArgumentException("LoRA needs a weight of at least 2 dimensions, got " + Arrays.toString(weightShape));
        }
        long rows = weightShape[0];
        long cols = Arrays.stream(weightShape).skip(1).reduce(1, (a, b) -> a * b);
        this.scale = alpha / r;
        dev.lora4j.DType dtype = LoraLayer.factorType(weightType);
        registerParameter("lora_A", Init.normal_(Tensor.empty(dtype, r, cols), 0, 1).requiresGrad_(true));
        registerParameter("lora_B", Tensor.zeros(dtype, rows, r).requiresGrad_(true));
    }

    /** Registers a rank-{@code r} LoRA parametrization on {@code layer.weight} and returns it. */
    public static LoraParametrization register(Module layer, int r, double alpha) {
        Tensor w = layer.storedParameter("weight");
        if (w == null) throw new IllegalArgumentException(layer.getClass().getSimpleName() + " has no weight");
        LoraParametrization p = new LoraParametrization(w.shape(), w.dtype(), r, alpha);
        Parametrize.registerParametrization(layer, "weight", p);
        return p;
    }

    public Tensor loraA() {
        return parameter("lora_A");
    }

    public Tensor loraB() {
        return parameter("lora_B");
    }

    public double scale() {
        return scale;
    }

    public boolean isEnabled() {
        return enabled;
    }

    /** Switches the update on or off (the seed's {@code enabled} flag). */
    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    @Override
    public Tensor forward(Tensor original) {
        if (!enabled) return original.alias();
        try (TensorScope s = TensorScope.open()) {
            Tensor delta = loraB().matmul(loraA()).view(original.shape()).mul(scale);
            return original.add(delta).to(original.dtype()).keep();
        }
    }

    @Override
    protected String extraRepr() {
        return "r=" + loraA().size(0) + ", scale=" + scale + (enabled ? "" : ", disabled");
    }
}
