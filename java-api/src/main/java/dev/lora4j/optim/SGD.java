package dev.lora4j.optim;

import static dev.lora4j.bindings.LibLora4j.lt_sgd_new;

import dev.lora4j.Tensor;
import java.util.List;

/**
 * Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay,
 * as {@code torch.optim.SGD} (LibTorch's implementation). See {@link Optimizer} for ownership.
 *
 * <p>Ownership and threads: see {@link Optimizer} (owns its state; one training thread).
 */
public final class SGD extends Optimizer {

    /**
     * SGD's settings, as keyword arguments in PyTorch; build with {@link #lr(double)} and the
     * {@code with}-style methods. Immutable.
     */
    public record Options(double lr, double momentum, double dampening, double weightDecay, boolean nesterov) {
        public Options {
            checkLr(lr);
            if (!(momentum >= 0)) throw new IllegalArgumentException("momentum must be >= 0, got " + momentum);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight_decay must be >= 0, got " + weightDecay);
            if (nesterov && (momentum <= 0 || dampening != 0)) {
                throw new IllegalArgumentException("Nesterov momentum requires a momentum and zero dampening");
            }
        }

        public Options momentum(double m) {
            return new Options(lr, m, dampening, weightDecay, nesterov);
        }

        public Options dampening(double d) {
            return new Options(lr, momentum, d, weightDecay, nesterov);
        }

        public Options weightDecay(double w) {
            return new Options(lr, momentum, dampening, w, nesterov);
        }

        public Options nesterov(boolean n) {
            return new Options(lr, momentum, dampening, weightDecay, n);
        }
    }

    /** Plain SGD options with learning rate {@code lr}. */
    public static Options lr(double lr) {
        return new Options(lr, 0, 0, 0, false);
    }

    public SGD(List<Tensor> params, double lr) {
        this(params, lr(lr));
    }

    public SGD(List<Tensor> params, Options o) {
        super("SGD", params, (p, n, out) -> lt_sgd_new(p, n, o.lr(), o.momentum(), o.dampening(), o.weightDecay(),
                o.nesterov() ? 1 : 0, out));
    }
}
