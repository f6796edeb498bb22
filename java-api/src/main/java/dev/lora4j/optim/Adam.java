package dev.lora4j.optim;

import static dev.lora4j.bindings.LibLora4j.lt_adam_new;

import dev.lora4j.Tensor;
import java.util.List;

/**
 * Adam, as {@code torch.optim.Adam} (weight decay added to the gradient), and its subclass
 * {@link AdamW} (decoupled weight decay), backed by LibTorch's implementations. See
 * {@link Optimizer} for ownership.
 *
 * <p>Ownership and threads: see {@link Optimizer} (owns its state; one training thread).
 */
public sealed class Adam extends Optimizer permits AdamW {

    /** Adam's settings (PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8). Immutable. */
    public record Options(double lr, double beta1, double beta2, double eps, double weightDecay, boolean amsgrad) {
        public Options {
            checkLr(lr);
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
                throw new IllegalArgumentException("betas must be in [0, 1), got (" + beta1 + ", " + beta2 + ")");
            }
            if (!(eps >= 0)) throw new IllegalArgumentException("eps must be >= 0, got " + eps);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight_decay must be >= 0, got " + weightDecay);
        }

        public Options betas(double b1, double b2) {
            return new Options(lr, b1, b2, eps, weightDecay, amsgrad);
        }

        public Options eps(double e) {
            return new Options(lr, beta1, beta2, e, weightDecay, amsgrad);
        }

        public Options weightDecay(double w) {
            return new Options(lr, beta1, beta2, eps, w, amsgrad);
        }

        public Options amsgrad(boolean a) {
            return new Options(lr, beta1, beta2, eps, weightDecay, a);
        }
    }

    /** Adam's default options with learning rate {@code lr} (weight decay 0). */
    public static Options lr(double lr) {
        return new Options(lr, 0.9, 0.999, 1e-8, 0, false);
    }

    public Adam(List<Tensor> params, double lr) {
        this(params, lr(lr));
    }

    public Adam(List<Tensor> params, Options o) {
        this("Adam", params, o, false);
    }

    Adam(String name, List<Tensor> params, Options o, boolean decoupled) {
        super(name, params, (p, n, out) -> lt_adam_new(p, n, o.lr(), o.beta1(), o.beta2(), o.eps(), o.weightDecay(),
                o.amsgrad() ? 1 : 0, decoupled ? 1 : 0, out));
    }
}
