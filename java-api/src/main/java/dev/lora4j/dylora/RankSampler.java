package dev.lora4j.dylora;

import java.util.Arrays;
import java.util.Objects;
import java.util.Random;

/**
 * Draws the rank b of one DyLoRA training step. The paper draws b uniformly from 1..r_max;
 * {@link #uniform(int, int)} restricts that to a range, {@link #weighted(double...)} takes any
 * distribution. Immutable; the randomness comes from the caller's {@link Random}.
 */
@FunctionalInterface
public interface RankSampler {

    /** One rank, drawn with {@code random}. */
    int sample(Random random);

    /** Uniform over {@code lo..hi} inclusive. */
    static RankSampler uniform(int lo, int hi) {
        if (lo < 1 || hi < lo) throw new IllegalArgumentException("need 1 <= lo <= hi, got " + lo + ".." + hi);
        return r -> lo + r.nextInt(hi - lo + 1);
    }

    /** Rank i+1 with probability proportional to {@code weights[i]}. */
    static RankSampler weighted(double... weights) {
        Objects.requireNonNull(weights, "weights");
        double[] cumulative = new double[weights.length];
        double total = 0;
        for (int i = 0; i < weights.length; i++) {
            if (!(weights[i] >= 0)) throw new IllegalArgumentException("weights must be >= 0, got " + Arrays.toString(weights));
            total += weights[i];
            cumulative[i] = total;
        }
        if (!(total > 0)) throw new IllegalArgumentException("weights must not all be zero");
        double sum = total;
        return r -> {
            double u = r.nextDouble() * sum;
            for (int i = 0; i < cumulative.length; i++) if (u < cumulative[i]) return i + 1;
            return cumulative.length;
        };
    }
}
