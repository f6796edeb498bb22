package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.function.UnaryOperator;

/**
 * Parameter-free elementwise modules: {@link #relu()}, {@link #gelu()}, {@link #tanh()},
 * {@link #sigmoid()}, printed with PyTorch's names ({@code ReLU()}, {@code GELU()}, ...).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public final class Activation extends Module {

    private final String name;
    private final String args;
    private final UnaryOperator<Tensor> fn;

    private Activation(String name, UnaryOperator<Tensor> fn) {
        this(name, "", fn);
    }

    private Activation(String name, String args, UnaryOperator<Tensor> fn) {
        this.name = name;
        this.args = args;
        this.fn = fn;
    }

    /** {@code nn.ReLU()}. */
    public static Activation relu() {
        return new Activation("ReLU", Tensor::relu);
    }

    /** {@code nn.GELU()} (exact, erf form). */
    public static Activation gelu() {
        return new Activation("GELU", Tensor::gelu);
    }

    /**
     * {@code nn.GELU(approximate=...)}: {@code "none"} is the exact erf form, {@code "tanh"}
     * the tanh approximation (Hugging Face's {@code gelu_new}).
     */
    public static Activation gelu(String approximate) {
        return switch (java.util.Objects.requireNonNull(approximate, "approximate")) {
            case "none" -> gelu();
            case "tanh" -> new Activation("GELU", "approximate='tanh'", t -> t.gelu("tanh"));
            default -> throw new IllegalArgumentException("approximate must be 'none' or 'tanh', not '" + approximate + "'");
        };
    }

    /** {@code nn.Tanh()}. */
    public static Activation tanh() {
        return new Activation("Tanh", Tensor::tanh);
    }

    /** {@code nn.Sigmoid()}. */
    public static Activation sigmoid() {
        return new Activation("Sigmoid", Tensor::sigmoid);
    }

    /** The PyTorch class name this stands for. */
    public String name() {
        return name;
    }

    @Override
    public Tensor forward(Tensor input) {
        return fn.apply(input);
    }

    @Override
    public String toString() {
        return name + "(" + args + ")";
    }
}
