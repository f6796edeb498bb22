package dev.lora4j.nn;

import dev.lora4j.Tensor;

/**
 * Zeroes elements with probability p in training mode (scaling the rest by 1/(1-p)), as {@code nn.Dropout}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Dropout extends Module {

    private final double p;

    public Dropout(double p) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1], got " + p);
        this.p = p;
    }

    public double p() {
        return p;
    }

    @Override
    public Tensor forward(Tensor input) {
        return Functional.dropout(input, p, isTraining());
    }

    @Override
    protected String extraRepr() {
        return "p=" + p + ", inplace=False";
    }
}
