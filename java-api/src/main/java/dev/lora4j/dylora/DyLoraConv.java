package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Functional;

/**
 * DyLoRA around an ungrouped 1-, 2- or 3-d convolution, in PEFT's layout: {@code lora_A}
 * (r_max, in, *kernel) is applied with the base's stride, padding and dilation, then
 * {@code lora_B} (out, r_max, 1, …) as a pointwise convolution; at rank b both are cut to b.
 * Grouped convolutions are refused: their rank cannot be cut one row at a time.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class DyLoraConv extends DyLoraLayer {

    public DyLoraConv(Conv base, LoraConfig config) {
        super(base, config);
        if (base.groups() != 1) {
            throw new IllegalArgumentException("DyLoRA supports ungrouped convolutions only (groups=" + base.groups()
                    + "): a grouped adapter's rank cannot be cut one row at a time");
        }
        int n = base.spatialDims();
        long[] aShape = new long[n + 2];
        aShape[0] = config.r();
        aShape[1] = base.inChannels();
        System.arraycopy(base.kernelSize(), 0, aShape, 2, n);
        long[] bShape = new long[n + 2];
        java.util.Arrays.fill(bShape, 1);
        bShape[0] = base.outChannels();
        bShape[1] = config.r();
        setFactors(initA(Tensor.empty(factorType(), aShape), config.r()), Tensor.zeros(factorType(), bShape));
        if (config.loraDropout() > 0) registerModule("lora_dropout", new Dropout(config.loraDropout()));
    }

    private Conv base() {
        return (Conv) baseLayer();
    }

    @Override
    protected Tensor baseWeight() {
        return base().weight();
    }

    @Override
    protected Tensor forwardWith(Tensor x, Tensor a, Tensor b) {
        Conv c = base();
        int n = c.spatialDims();
        long[] ones = new long[n];
        java.util.Arrays.fill(ones, 1);
        try (Tensor down = Functional.conv(n, x, a, null, c.stride(), c.padding(), c.dilation(), 1)) {
            return Functional.conv(n, down, b, null, ones, new long[n], ones, 1);
        }
    }

    @Override
    protected Tensor deltaWith(Tensor a, Tensor b) {
        long out = b.size(0);
        long r = b.size(1);
        try (Tensor b2 = b.reshape(out, r); Tensor a2 = a.reshape(r, -1); Tensor d = b2.matmul(a2)) {
            return d.reshape(base().weight().shape());
        }
    }
}
