package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * LoRA on a fused projection (loralib's {@code MergedLinear}): the base output is split into
 * {@code enableLora.length} equal parts (q, k, v of a fused qkv) and only the parts marked
 * true get an adapter. Parameters {@code lora_A} (r·k, in) and {@code lora_B} (out/parts·k, r)
 * for k enabled parts; part j uses rows j·r..(j+1)·r of A and its own rows of B.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class MergedLoraLinear extends LoraLayer {

    private final boolean[] enableLora;
    private final long inFeatures;
    private final long outFeatures;
    private final long partSize;

    public MergedLoraLinear(Module base, LoraConfig config, boolean... enableLora) {
        super(base, config);
        Objects.requireNonNull(enableLora, "enableLora");
        if (enableLora.length == 0) throw new IllegalArgumentException("enable_lora must name at least one part");
        Tensor w = base.parameter("weight");
        if (w == null || w.dim() != 2) throw new IllegalArgumentException("MergedLoraLinear needs a base layer with a 2-d weight");
        boolean fanInFanOut = config().fanInFanOut();
        inFeatures = fanInFanOut ? w.size(0) : w.size(1);
        outFeatures = fanInFanOut ? w.size(1) : w.size(0);
        if (outFeatures % enableLora.length != 0) {
            throw new IllegalArgumentException("enable_lora has " + enableLora.length + " parts, which does not divide out_features "
                    + outFeatures);
        }
        this.enableLora = enableLora.clone();
        this.partSize = outFeatures / enableLora.length;
        long k = enabledParts();
        if (k == 0) throw new IllegalArgumentException("enable_lora " + Arrays.toString(enableLora) + " enables no part");
        int r = config.r();
        DType dtype = factorType();
        Tensor a = registerParameter("lora_A", Tensor.empty(dtype, r * k, inFeatures).requiresGrad_(true));
        Tensor b = registerParameter("lora_B", Tensor.zeros(dtype, partSize * k, r).requiresGrad_(true));
        LoraLinear.initFactors(config, a, b);
        if (config.loraDropout() > 0) registerModule("lora_dropout", new dev.lora4j.nn.Dropout(config.loraDropout()));
    }

    private long enabledParts() {
        long k = 0;
        for (boolean e : enableLora) if (e) k++;
        return k;
    }

    public boolean[] enableLora() {
        return enableLora.clone();
    }

    /** A, shape (r·k, in), parameter {@code lora_A} (this layer holds one adapter). */
    @Override
    public Tensor loraA(String name) {
        config(name);
        return parameter("lora_A");
    }

    /** B, shape (out/parts·k, r), parameter {@code lora_B}. */
    @Override
    public Tensor loraB(String name) {
        config(name);
        return parameter("lora_B");
    }

    @Override
    protected Tensor baseWeight() {
        return baseLayer().parameter("weight");
    }

    /** Builds the full-width result from per-part pieces; disabled parts are zeros. */
    private Tensor assemble(DType dtype, long[] zeroShape, int dim, java.util.function.IntFunction<Tensor> part) {
        List<Tensor> pieces = new ArrayList<>();
        int j = 0;
        for (boolean enabled : enableLora) {
            pieces.add(enabled ? part.apply(j++) : Tensor.zeros(dtype, zeroShape));
        }
        return Tensor.cat(pieces, dim);
    }

    @Override
    protected Tensor loraForward(Tensor input, String name) {
        int r = config().r();
        Module dropout = children().get("lora_dropout");
        try (TensorScope s = TensorScope.open()) {
            Tensor cast = castInput(input, loraA());
            Tensor x = dropout == null ? cast : dropout.forward(cast);
            Tensor down = Functional.linear(x, loraA(), null);
            long[] zeroShape = down.shape();
            zeroShape[zeroShape.length - 1] = partSize;
            int last = zeroShape.length - 1;
            Tensor full = assemble(down.dtype(), zeroShape, last, j -> down.narrow(last, (long) j * r, r)
                    .matmul(loraB().narrow(0, j * partSize, partSize).t()));
            return full.mul(scaling()).keep();
        }
    }

    @Override
    protected Tensor deltaWeight(DType dtype, String name) {
        int r = config().r();
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor a = loraA().to(dtype);
            Tensor b = loraB().to(dtype);
            Tensor delta = assemble(dtype, new long[] {partSize, inFeatures}, 0,
                    j -> b.narrow(0, j * partSize, partSize).matmul(a.narrow(0, (long) j * r, r)));
            return maybeTranspose(delta.mul(scaling())).contiguous().keep();
        }
    }

    @Override
    protected String extraRepr() {
        return super.extraRepr() + ", enable_lora=" + Arrays.toString(enableLora);
    }
}
