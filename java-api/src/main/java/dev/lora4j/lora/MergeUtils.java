package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * PEFT's {@code merge_utils}: ways to combine task tensors (adapter factors or weight deltas)
 * of one shape into one, used by {@link Lora#addWeightedAdapter} for {@link Combination#TIES},
 * {@link Combination#DARE_LINEAR}, {@link Combination#DARE_TIES} and
 * {@link Combination#MAGNITUDE_PRUNE}. Each task tensor is first scaled by its weight wᵢ
 * (after pruning):
 * <ul>
 *   <li>{@link #taskArithmetic}: Σ wᵢ·tᵢ.
 *   <li>{@link #magnitudePrune}: Σ wᵢ·prune_magnitude(tᵢ).
 *   <li>{@link #ties}: prune by magnitude, elect the majority sign per element
 *       ({@link #calculateMajoritySignMask}), average the weighted values that agree with it
 *       (PEFT's {@code disjoint_merge}).
 *   <li>{@link #dareLinear} / {@link #dareTies}: as task arithmetic / TIES with random pruning
 *       (keep each value with probability {@code density}, rescale the kept by 1/density).
 * </ul>
 * Pruning keeps the {@code ⌊density·n⌋} largest magnitudes; density ≥ 1 keeps everything (and
 * random pruning then does not rescale), as in PEFT. Random masks come from LibTorch's generator
 * ({@link Torch#manualSeed} makes them repeatable). The arithmetic is done in double precision
 * on the host, the result has the first tensor's dtype. Stateless and thread-safe; results
 * belong to the caller.
 */
public final class MergeUtils {

    private MergeUtils() {}

    /** How the majority sign of each element is elected (PEFT's {@code majority_sign_method}). */
    public enum MajoritySign {
        /** The sign of the sum of the values. */
        TOTAL,
        /** The sign that most values have (ties go to +). */
        FREQUENCY
    }

    /** How {@link #prune} chooses the values it keeps. */
    public enum PruneMethod {
        /** The largest magnitudes. */
        MAGNITUDE,
        /** Each value with probability density. */
        RANDOM
    }

    /**
     * {@code tensor} with all but a {@code density} fraction of its values set to zero (PEFT's
     * {@code prune}); with {@code rescale} (random only) the kept values are divided by density.
     *
     * @throws IllegalArgumentException for a negative or non-finite density
     */
    public static Tensor prune(Tensor tensor, double density, PruneMethod method, boolean rescale) {
        Objects.requireNonNull(tensor, "tensor");
        Objects.requireNonNull(method, "method");
        checkDensity(density);
        double[] v = values(tensor);
        return back(prune(v, density, method, rescale), tensor);
    }

    /**
     * A mask (1 or 0 per element of a task tensor, shape of one task tensor stacked
     * {@code count} times) saying where each of {@code tasks} agrees with the elected sign.
     */
    public static Tensor calculateMajoritySignMask(List<Tensor> tasks, MajoritySign method) {
        double[][] t = stacked(tasks);
        boolean[][] mask = majority(t, method);
        double[] flat = new double[t.length * t[0].length];
        for (int i = 0; i < t.length; i++) for (int j = 0; j < t[i].length; j++) flat[i * t[i].length + j] = mask[i][j] ? 1 : 0;
        long[] shape = new long[tasks.get(0).dim() + 1];
        shape[0] = tasks.size();
        System.arraycopy(tasks.get(0).shape(), 0, shape, 1, shape.length - 1);
        try (Tensor d = Tensor.of(flat, shape)) {
            return d.to(tasks.get(0).dtype());
        }
    }

    /** Σ wᵢ·tᵢ. */
    public static Tensor taskArithmetic(List<Tensor> tasks, double[] weights) {
        return combine(tasks, weights, 1, false, null, PruneMethod.MAGNITUDE);
    }

    /** Σ wᵢ·prune_magnitude(tᵢ, density). */
    public static Tensor magnitudePrune(List<Tensor> tasks, double[] weights, double density) {
        return combine(tasks, weights, density, false, null, PruneMethod.MAGNITUDE);
    }

    /** TIES: magnitude pruning, sign election on the pruned (unweighted) values, disjoint mean of the weighted ones. */
    public static Tensor ties(List<Tensor> tasks, double[] weights, double density, MajoritySign method) {
        return combine(tasks, weights, density, true, Objects.requireNonNull(method, "method"), PruneMethod.MAGNITUDE);
    }

    /** DARE: random pruning with rescaling, then Σ wᵢ·tᵢ. */
    public static Tensor dareLinear(List<Tensor> tasks, double[] weights, double density) {
        return combine(tasks, weights, density, false, null, PruneMethod.RANDOM);
    }

    /** DARE-TIES: random pruning with rescaling, then sign election and disjoint mean as {@link #ties}. */
    public static Tensor dareTies(List<Tensor> tasks, double[] weights, double density, MajoritySign method) {
        return combine(tasks, weights, density, true, Objects.requireNonNull(method, "method"), PruneMethod.RANDOM);
    }

    private static Tensor combine(List<Tensor> tasks, double[] weights, double density, boolean disjoint, MajoritySign method,
                                  PruneMethod prune) {
        Objects.requireNonNull(weights, "weights");
        checkDensity(density);
        double[][] t = stacked(tasks);
        if (weights.length != t.length) throw new IllegalArgumentException(t.length + " task tensors and " + weights.length + " weights");
        for (int i = 0; i < t.length; i++) t[i] = prune(t[i], density, prune, true);
        boolean[][] mask = disjoint ? majority(t, method) : null;
        int n = t[0].length;
        double[] out = new double[n];
        for (int j = 0; j < n; j++) {
            double sum = 0;
            int kept = 0;
            for (int i = 0; i < t.length; i++) {
                if (mask != null && !mask[i][j]) continue;
                sum += t[i][j] * weights[i];
                kept++;
            }
            out[j] = mask == null ? sum : sum / Math.max(kept, 1);
        }
        return back(out, tasks.get(0));
    }

    private static double[] prune(double[] v, double density, PruneMethod method, boolean rescale) {
        if (density >= 1) return v;
        double[] out = new double[v.length];
        if (method == PruneMethod.MAGNITUDE) {
            int k = (int) (density * v.length);
            Integer[] order = new Integer[v.length];
            for (int i = 0; i < v.length; i++) order[i] = i;
            Arrays.sort(order, (x, y) -> Double.compare(Math.abs(v[y]), Math.abs(v[x])));
            for (int i = 0; i < k; i++) out[order[i]] = v[order[i]];
        } else {
            double[] u;
            try (var ng = Torch.noGrad(); Tensor r = Tensor.rand(DType.FLOAT64, v.length)) {
                u = r.toDoubleArray();
            }
            for (int i = 0; i < v.length; i++) if (u[i] < density) out[i] = rescale ? v[i] / density : v[i];
        }
        return out;
    }

    /** Per task, whether each element's sign equals the elected one (sign 0 never does, as torch's sign() == ±1). */
    private static boolean[][] majority(double[][] t, MajoritySign method) {
        int n = t[0].length;
        boolean[][] mask = new boolean[t.length][n];
        for (int j = 0; j < n; j++) {
            double m = 0;
            for (double[] task : t) m += method == MajoritySign.TOTAL ? task[j] : Math.signum(task[j]);
            double elected = m >= 0 ? 1 : -1;
            for (int i = 0; i < t.length; i++) mask[i][j] = Math.signum(t[i][j]) == elected;
        }
        return mask;
    }

    private static void checkDensity(double density) {
        if (!(density >= 0) || Double.isInfinite(density)) throw new IllegalArgumentException("density must be in [0, 1], got " + density);
    }

    private static double[][] stacked(List<Tensor> tasks) {
        Objects.requireNonNull(tasks, "tasks");
        if (tasks.isEmpty()) throw new IllegalArgumentException("no task tensors");
        long[] shape = tasks.get(0).shape();
        double[][] t = new double[tasks.size()][];
        for (int i = 0; i < t.length; i++) {
            Tensor x = Objects.requireNonNull(tasks.get(i), "tasks[" + i + "]");
            if (!Arrays.equals(x.shape(), shape)) {
                throw new IllegalArgumentException("task tensors differ in shape: " + Arrays.toString(shape) + " and " + Arrays.toString(x.shape()));
            }
            t[i] = values(x);
        }
        return t;
    }

    private static double[] values(Tensor t) {
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) { // the intermediate tensors too
            return t.detach().to(DType.FLOAT64).contiguous().toDoubleArray();
        }
    }

    private static Tensor back(double[] v, Tensor like) {
        try (Tensor d = Tensor.of(v, like.shape())) {
            return d.to(like.dtype());
        }
    }
}
