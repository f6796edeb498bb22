package dev.lora4j.nn;

import dev.lora4j.Tensor;

/**
 * {@code y = x·Wᵀ + b}, as {@code nn.Linear}: weight (out_features, in_features), bias
 * (out_features) or none. Initialised as PyTorch does: W ~ kaiming_uniform(a=√5), that is
 * U(-1/√in, 1/√in), and b ~ U(-1/√in, 1/√in). Thread-safety and ownership: see {@link Module}.
 */
public class Linear extends Module {

    private final long inFeatures;
    private final long outFeatures;

    public Linear(long inFeatures, long outFeatures) {
        this(inFeatures, outFeatures, true);
    }

    public Linear(long inFeatures, long outFeatures, boolean bias) {
        if (inFeatures < 1 || outFeatures < 1) {
            throw new IllegalArgumentException("Linear needs in_features >= 1 and out_features >= 1, got "
                    + inFeatures + " and " + outFeatures);
        }
        this.inFeatures = inFeatures;
        this.outFeatures = outFeatures;
        registerParameter("weight", Init.kaimingUniform_(Tensor.empty(outFeatures, inFeatures), Math.sqrt(5)).requiresGrad_(true));
        double bound = 1 / Math.sqrt(inFeatures);
        registerParameter("bias", bias ? Init.uniform_(Tensor.empty(outFeatures), -bound, bound).requiresGrad_(true) : null);
    }

    public long inFeatures() {
        return inFeatures;
    }

    public long outFeatures() {
        return outFeatures;
    }

    /** The stored weight (the original when parametrized); owned by the layer. */
    public Tensor weight() {
        return storedParameter("weight");
    }

    /** The bias, or null. */
    public Tensor bias() {
        return parameter("bias");
    }

    @Override
    public Tensor forward(Tensor input) {
        return withParameter("weight", w -> Functional.linear(input, w, bias()));
    }

    @Override
    protected String extraRepr() {
        return "in_features=" + inFeatures + ", out_features=" + outFeatures + ", bias=" + (bias() != null ? "True" : "False");
    }
}
