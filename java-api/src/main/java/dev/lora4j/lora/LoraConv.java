package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Conv1d;
import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Conv3d;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Module;

/**
 * LoRA around a 1-, 2- or 3-d convolution, in PEFT's layout: {@code lora_A} is a convolution
 * with the base's kernel, stride, padding, dilation and groups (in → r), {@code lora_B} a
 * 1×…×1 convolution (r → out) with the same groups, so {@code y = base(x) + s·B(A(dropout(x)))}.
 *
 * <p>With groups g (g must divide r) the update is block-diagonal like the base weight, so
 * grouped convolutions merge exactly: ΔW[group] = s·B[group]·A[group], reshaped to
 * (out, in/g, *kernel). For g = 1 the shapes are PEFT's: A (r, in, *k), B (out, r, 1, ...).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraConv extends LoraLayer {

    public LoraConv(Conv base, LoraConfig config) {
        super(base, config);
        int r = config.r();
        long g = base.groups();
        if (r % g != 0) {
            throw new IllegalArgumentException("LoRA rank r=" + r + " must be divisible by the convolution's groups=" + g);
        }
        int n = base.spatialDims();
        long[] ones = new long[n];
        long[] zeros = new long[n];
        java.util.Arrays.fill(ones, 1);
        Conv a = registerModule("lora_A", conv(n, base.inChannels(), r, base.kernelSize(), base.stride(), base.padding(), base.dilation(), g));
        Conv b = registerModule("lora_B", conv(n, r, base.outChannels(), ones, ones, zeros, ones, g));
        LoraLinear.initFactors(config, a.weight(), b.weight());
        if (config.loraDropout() > 0) registerModule("lora_dropout", new Dropout(config.loraDropout()));
    }

    private static Conv conv(int n, long in, long out, long[] k, long[] s, long[] p, long[] d, long g) {
        return switch (n) {
            case 1 -> new Conv1d(in, out, k, s, p, d, g, false);
            case 2 -> new Conv2d(in, out, k, s, p, d, g, false);
            default -> new Conv3d(in, out, k, s, p, d, g, false);
        };
    }

    private Conv base() {
        return (Conv) baseLayer();
    }

    /** A's weight, (r, in/groups, *kernel). */
    public Tensor loraA() {
        return ((Conv) child("lora_A")).weight();
    }

    /** B's weight, (out, r/groups, 1, ...). */
    public Tensor loraB() {
        return ((Conv) child("lora_B")).weight();
    }

    @Override
    protected Tensor baseWeight() {
        return base().weight();
    }

    @Override
    protected Tensor loraForward(Tensor input) {
        Module dropout = children().get("lora_dropout");
        try (TensorScope s = TensorScope.open()) {
            Tensor x = dropout == null ? input : dropout.forward(input);
            return child("lora_B").forward(child("lora_A").forward(x)).mul(scaling()).keep();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Conv base = base();
            long g = base.groups();
            long out = base.outChannels();
            long r = r();
            Tensor b = loraB().to(dtype).reshape(g, out / g, r / g);
            Tensor a = loraA().to(dtype).reshape(g, r / g, -1);
            return b.matmul(a).reshape(base.weight().shape()).mul(scaling()).keep();
        }
    }
}
