package dev.lora4j.optim;

import dev.lora4j.Tensor;
import java.util.List;

/**
 * Adam with decoupled weight decay (Loshchilov and Hutter), as {@code torch.optim.AdamW}:
 * each step multiplies the parameters by {@code 1 - lr·weight_decay} before the Adam update.
 * PyTorch's default weight decay for AdamW is 0.01. See {@link Optimizer} for ownership.
 *
 * <p>Ownership and threads: see {@link Optimizer} (owns its state; one training thread).
 */
public final class AdamW extends Adam {

    /** AdamW's default options with learning rate {@code lr} (weight decay 0.01). */
    public static Options lr(double lr) {
        return Adam.lr(lr).weightDecay(0.01);
    }

    public AdamW(List<Tensor> params, double lr) {
        this(params, lr(lr));
    }

    public AdamW(List<Tensor> params, Options o) {
        super("AdamW", params, o, true);
    }
}
