package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;

/**
 * Hugging Face's {@code Conv1D} ({@code transformers.pytorch_utils.Conv1D}, used by GPT-2's
 * {@code c_attn}, {@code c_proj}, {@code c_fc}): despite its name a linear layer whose weight is
 * stored transposed, {@code y = x·W + b} with weight (nx, nf) = (in_features, out_features) and
 * bias (nf). Initialised as transformers does: W ~ N(0, 0.02²), b = 0. The parameter names are
 * transformers' ({@code weight}, {@code bias}), so GPT-2 checkpoints and PEFT adapter files map
 * 1:1; LoRA wraps it with {@code fan_in_fan_out} true. (Named {@code HfConv1D}, not {@code Conv1D},
 * so that it cannot clash with {@link Conv1d} on file systems that ignore case.)
 *
 * <p>Ownership and threads: as every {@link Module}: it owns its parameters and frees them on
 * close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class HfConv1D extends Module {

    private final long nf;
    private final long nx;

    /** {@code nf} outputs from {@code nx} inputs (transformers' argument order). */
    public HfConv1D(long nf, long nx) {
        if (nf < 1 || nx < 1) throw new IllegalArgumentException("Conv1D needs nf >= 1 and nx >= 1, got " + nf + " and " + nx);
        this.nf = nf;
        this.nx = nx;
        registerParameter("weight", Init.normal_(Tensor.empty(nx, nf), 0, 0.02).requiresGrad_(true));
        registerParameter("bias", Tensor.zeros(nf).requiresGrad_(true));
    }

    /** in_features (nx). */
    public long inFeatures() {
        return nx;
    }

    /** out_features (nf). */
    public long outFeatures() {
        return nf;
    }

    /** The weight, (in_features, out_features); owned by the layer. */
    public Tensor weight() {
        return storedParameter("weight");
    }

    public Tensor bias() {
        return parameter("bias");
    }

    @Override
    public Tensor forward(Tensor input) {
        return withParameter("weight", w -> {
            try (TensorScope s = TensorScope.open()) {
                return Functional.linear(input, w.t(), bias()).keep();
            }
        });
    }

    @Override
    protected String extraRepr() {
        return "nf=" + nf + ", nx=" + nx;
    }
}
