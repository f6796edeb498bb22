package dev.lora4j.dylora;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Module;
import dev.lora4j.optim.Optimizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Random;

/**
 * Owns the rank schedule of DyLoRA training for a whole model: one rank b per optimizer
 * step, drawn from a {@link RankSampler} with a seeded generator and shared by every
 * {@link DyLoraLayer}. A training loop makes one call per step:
 *
 * <pre>{@code
 * var ctl = DyLoraController.of(model, 42);              // uniform 1..r_max, frozen, strict
 * try (var opt = new AdamW(model.trainableParameters(), 1e-3)) {
 *     for (Batch b : loader) {
 *         try (b; var s = TensorScope.open()) {
 *             opt.zeroGrad();
 *             crossEntropy(model.forward(b.inputs()), b.targets()).backward();
 *             ctl.step(opt);                                 // update, then draw the next rank
 *         }
 *     }
 * }
 * ctl.setRank(3);                                          // evaluate or deploy at rank 3
 * }</pre>
 *
 * <p>Strict mode makes the optimizer update leave the rows that were not trained this step
 * bit-identical: Adam's moments and (decoupled) weight decay would otherwise move them, as
 * they do in the official code. Not thread-safe: one training thread.
 */
public final class DyLoraController {

    private final List<DyLoraLayer> layers;
    private final RankSampler sampler;
    private final Random random;
    private boolean strict = true;
    private int rank;
    private long steps;

    private DyLoraController(List<DyLoraLayer> layers, RankSampler sampler, long seed) {
        if (layers.isEmpty()) throw new IllegalArgumentException("the model has no DyLoRA layer");
        this.layers = List.copyOf(layers);
        this.sampler = Objects.requireNonNull(sampler, "sampler");
        this.random = new Random(seed);
        draw();
    }

    /**
     * A controller for every DyLoRA layer of {@code model}, ranks uniform over 1..r_max (the
     * smallest r_max of the layers at each draw, so it follows truncation and padding).
     */
    public static DyLoraController of(Module model, long seed) {
        List<DyLoraLayer> layers = layers(model);
        RankSampler current = r -> 1 + r.nextInt(layers.stream().mapToInt(DyLoraLayer::rMax).min().orElse(1));
        return new DyLoraController(layers, current, seed);
    }

    /** A controller with a given sampler (its ranks must fit every layer's r_max). */
    public static DyLoraController of(Module model, RankSampler sampler, long seed) {
        return new DyLoraController(layers(model), sampler, seed);
    }

    private static List<DyLoraLayer> layers(Module model) {
        Objects.requireNonNull(model, "model");
        List<DyLoraLayer> out = new ArrayList<>();
        model.namedModules().values().forEach(m -> {
            if (m instanceof DyLoraLayer d) out.add(d);
        });
        return out;
    }

    /** Whether optimizer steps leave untrained rows bit-identical (default true). */
    public DyLoraController strict(boolean strict) {
        this.strict = strict;
        return this;
    }

    /** Sets the training mode of every layer (default {@link DyLoraLayer.Mode#FROZEN}). */
    public DyLoraController mode(DyLoraLayer.Mode mode) {
        layers.forEach(l -> l.setMode(mode));
        return this;
    }

    /** The rank the next forward will use. */
    public int rank() {
        return rank;
    }

    /** Optimizer steps taken through this controller. */
    public long steps() {
        return steps;
    }

    /** Sets one rank on every layer (for evaluation, merging or deployment). */
    public void setRank(int b) {
        layers.forEach(l -> l.checkRank(b)); // every layer before any changes
        layers.forEach(l -> l.setRank(b));
        rank = b;
    }

    /** Draws the next rank and sets it on every layer; returns it. */
    public int draw() {
        int b = sampler.sample(random);
        setRank(b);
        return b;
    }

    /**
     * One training step after backward: the optimizer's update (keeping untrained rows intact
     * when strict), then a new rank for the next forward.
     */
    public void step(Optimizer optimizer) {
        Objects.requireNonNull(optimizer, "optimizer");
        if (strict) {
            try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
                List<Tensor> savedA = new ArrayList<>();
                List<Tensor> savedB = new ArrayList<>();
                for (DyLoraLayer l : layers) {
                    savedA.add(l.loraA().clone());
                    savedB.add(l.loraB().clone());
                }
                optimizer.step();
                for (int i = 0; i < layers.size(); i++) restoreInactive(layers.get(i), savedA.get(i), savedB.get(i));
            }
        } else {
            optimizer.step();
        }
        steps++;
        draw();
    }

    /** Copies the rows this step did not train back from the saved factors. */
    private static void restoreInactive(DyLoraLayer l, Tensor a0, Tensor b0) {
        boolean[] inactive = l.inactiveRows();
        Tensor a = l.loraA();
        Tensor b = l.loraB();
        int i = 0;
        while (i < inactive.length) {
            if (!inactive[i]) {
                i++;
                continue;
            }
            int j = i;
            while (j < inactive.length && inactive[j]) j++;
            a.narrow(0, i, j - i).copy_(a0.narrow(0, i, j - i));
            b.narrow(1, i, j - i).copy_(b0.narrow(1, i, j - i));
            i = j;
        }
    }
}
