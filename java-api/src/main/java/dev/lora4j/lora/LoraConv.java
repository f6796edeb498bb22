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
import dev.lora4j.nn.ModuleDict;

/**
 * LoRA around a 1-, 2- or 3-d convolution, in PEFT's layout: per adapter, {@code lora_A.<name>} is a convolution
 * with the base's kernel, stride, padding, dilation and groups (in → r), {@code lora_B} a
 * {@code lora_B.<name>} a 1×…×1 convolution (r → out) with the same groups, so {@code y = base(x) + s·B(A(dropout(x)))}.
 *
 * <p>With groups g (g must divide r) the update is block-diagonal like the base weight, so
 * grouped convolutions merge exactly: ΔW[group] = s·B[group]·A[group], reshaped to
 * (out, in/g, *kernel). For g = 1 the shapes are PEFT's: A (r, in, *k), B (out, r, 1, ...).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraConv extends LoraLayer {

    private final ModuleDict loraA;
    private final ModuleDict loraB;
    private final ModuleDict dropout;

    /** Wraps {@code base} with one adapter, {@value LoraLayer#DEFAULT_ADAPTER}. */
    public LoraConv(Conv base, LoraConfig config) {
        this(base, DEFAULT_ADAPTER, config);
    }

    /** Wraps {@code base} with one adapter named {@code adapterName}. */
    public LoraConv(Conv base, String adapterName, LoraConfig config) {
        super(base);
        dropout = registerModule("lora_dropout", new ModuleDict());
        loraA = registerModule("lora_A", new ModuleDict());
        loraB = registerModule("lora_B", new ModuleDict());
        addAdapter(adapterName, config);
    }

    @Override
    protected void createAdapter(String name, LoraConfig config) {
        Conv base = base();
        int r = config.r();
        long g = base.groups();
        if (r % g != 0) {
            throw new IllegalArgumentException("LoRA rank r=" + r + " must be divisible by the convolution's groups=" + g);
        }
        int n = base.spatialDims();
        long[] ones = new long[n];
        long[] zeros = new long[n];
        java.util.Arrays.fill(ones, 1);
        DType dtype = factorType();
        Conv a = loraA.put(name, (Conv) conv(n, base.inChannels(), r, base.kernelSize(), base.stride(), base.padding(), base.dilation(), g).to(dtype));
        Conv b = loraB.put(name, (Conv) conv(n, r, base.outChannels(), ones, ones, zeros, ones, g).to(dtype));
        LoraLinear.initFactors(config, a.weight(), b.weight());
        if (config.loraDropout() > 0) dropout.put(name, new Dropout(config.loraDropout()));
    }

    @Override
    protected void destroyAdapter(String name) {
        loraA.remove(name).close();
        loraB.remove(name).close();
        if (dropout.containsKey(name)) dropout.remove(name).close();
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

    /** A's weight of adapter {@code name}, (r, in/groups, *kernel). */
    @Override
    public Tensor loraA(String name) {
        config(name);
        return ((Conv) loraA.get(name)).weight();
    }

    /** B's weight of adapter {@code name}, (out, r/groups, 1, ...). */
    @Override
    public Tensor loraB(String name) {
        config(name);
        return ((Conv) loraB.get(name)).weight();
    }

    @Override
    protected Tensor baseWeight() {
        return base().weight();
    }

    @Override
    protected Tensor loraForward(Tensor input, String name) {
        try (TensorScope s = TensorScope.open()) {
            Tensor cast = castInput(input, loraA(name));
            Tensor x = dropout.containsKey(name) ? dropout.get(name).forward(cast) : cast;
            return loraB.get(name).forward(loraA.get(name).forward(x)).mul(scaling(name)).keep();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype, String name) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Conv base = base();
            long g = base.groups();
            long out = base.outChannels();
            long r = config(name).r();
            Tensor b = loraB(name).to(dtype).reshape(g, out / g, r / g);
            Tensor a = loraA(name).to(dtype).reshape(g, r / g, -1);
            return b.matmul(a).reshape(base.weight().shape()).mul(scaling(name)).keep();
        }
    }
}
