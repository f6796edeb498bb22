package dev.lora4j.lora;

import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.ArrayList;
import java.util.List;

/**
 * PEFT's {@code _generalized_task_arithmetic_weighted_adapter} for one layer: the new adapter's
 * A is a {@link MergeUtils} combination of the adapters' A with weights √|wᵢ·sᵢ|·sign(wᵢ·sᵢ),
 * its B the same combination of their B with weights √|wᵢ·sᵢ| (so B·A carries wᵢ·sᵢ for a
 * single adapter, negative weights included). The new adapter has rank r (all adapters need
 * it) and α = r. Stateless; changes the layer (single-threaded, no forward running).
 */
final class TaskArithmeticAdapters {

    private TaskArithmeticAdapters() {}

    /**
     * The init of a combined adapter: its factors are overwritten, so an init that changes the
     * base weight (PiSSA, OLoRA) must not run again; other inits are kept.
     */
    static LoraConfig.Init initOf(LoraConfig first) {
        return InitSvd.handles(first) ? LoraConfig.Init.DEFAULT : first.init();
    }

    /**
     * Checks that {@code layer} can combine its share of {@code adapters}; returns the rank (0
     * when it holds none): the common rank, or for the _SVD types {@code svdRank} (0: the largest).
     */
    static int check(LoraLayer layer, List<String> adapters, Combination type, int svdRank) {
        List<String> names = adapters.stream().filter(layer::hasAdapter).toList();
        if (names.isEmpty()) return 0;
        if (layer.baseLayer() instanceof dev.lora4j.nn.Conv c && c.groups() > 1) {
            throw new UnsupportedOperationException("weighted combination of adapters on grouped convolutions is not supported");
        }
        if (type.truncatesBySvd() && adapters.size() > 1) {
            int r = svdRank > 0 ? svdRank : names.stream().mapToInt(n -> layer.config(n).r()).max().orElseThrow();
            Tensor a = layer.loraA(names.get(0));
            long k = Math.min(layer.loraB(names.get(0)).size(0), a.numel() / a.size(0));
            if (r > k) throw new IllegalArgumentException("SVD rank " + r + " exceeds min(out, in) = " + k + " of " + layer.getClass().getSimpleName());
            return r;
        }
        int r = layer.config(names.get(0)).r();
        for (String n : names) {
            if (layer.config(n).r() != r) {
                throw new IllegalArgumentException("TIES, DARE and MAGNITUDE_PRUNE combinations need adapters of one rank, got "
                        + names.stream().map(x -> layer.config(x).r()).toList());
            }
        }
        return r;
    }

    /** Adds adapter {@code newName} to {@code layer} after {@link #check}; nothing when it holds none of {@code adapters}. */
    static void combine(LoraLayer layer, List<String> adapters, double[] weights, String newName, Combination type, int svdRank,
                        double density, MergeUtils.MajoritySign method) {
        int rank = check(layer, adapters, type, svdRank);
        if (rank == 0) return;
        List<Tensor> as = new ArrayList<>();
        List<Tensor> bs = new ArrayList<>();
        List<Double> wa = new ArrayList<>();
        List<Double> wb = new ArrayList<>();
        List<Double> ws = new ArrayList<>();
        List<Double> scales = new ArrayList<>();
        String first = null;
        for (int i = 0; i < adapters.size(); i++) {
            String n = adapters.get(i);
            if (!layer.hasAdapter(n)) continue;
            if (first == null) first = n;
            double f = weights[i] * layer.scaling(n);
            wa.add(Math.sqrt(Math.abs(f)) * (f >= 0 ? 1 : -1));
            wb.add(Math.sqrt(Math.abs(f)));
            as.add(layer.loraA(n));
            bs.add(layer.loraB(n));
            ws.add(weights[i]);
            scales.add(layer.scaling(n));
        }
        LoraConfig c = layer.config(first);
        LoraConfig config = new LoraConfig(rank, rank, c.loraDropout(), c.fanInFanOut(), false, initOf(c), c.targetModules(), c.targetRegex(),
                c.excludeModules(), c.bias());
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor a;
            Tensor b;
            // As PEFT: one adapter is combined linearly (on its factors) whatever the type.
            Combination t = adapters.size() == 1 ? Combination.LINEAR : type;
            if (t.truncatesBySvd()) {
                List<Tensor> deltas = new ArrayList<>(); // ΔWᵢ = sᵢ·Bᵢ·Aᵢ in the factors' layout (out, in·k…)
                for (int i = 0; i < as.size(); i++) {
                    long r = as.get(i).size(0);
                    deltas.add(bs.get(i).reshape(bs.get(i).size(0), r).matmul(as.get(i).reshape(r, -1)).mul(scales.get(i)));
                }
                Tensor[] ab = truncate(apply(t, deltas, toArray(ws), density, method), rank, as.get(0).shape(), bs.get(0).shape());
                a = ab[0];
                b = ab[1];
            } else {
                a = apply(t, as, toArray(wa), density, method);
                b = apply(t, bs, toArray(wb), density, method);
            }
            layer.addAdapter(newName, config);
            layer.loraA(newName).copy_(a);
            layer.loraB(newName).copy_(b);
        }
    }

    private static Tensor apply(Combination type, List<Tensor> tasks, double[] w, double density, MergeUtils.MajoritySign method) {
        return switch (type) {
            case TIES, TIES_SVD -> MergeUtils.ties(tasks, w, density, method);
            case DARE_LINEAR, DARE_LINEAR_SVD -> MergeUtils.dareLinear(tasks, w, density);
            case DARE_TIES, DARE_TIES_SVD -> MergeUtils.dareTies(tasks, w, density, method);
            case MAGNITUDE_PRUNE, MAGNITUDE_PRUNE_SVD -> MergeUtils.magnitudePrune(tasks, w, density);
            case LINEAR -> MergeUtils.taskArithmetic(tasks, w);
            default -> throw new IllegalArgumentException(type + " is not a task-arithmetic combination");
        };
    }

    /** A = Vh_k and B = U_k·diag(S_k) of {@code delta} (out, in·k…), in the factors' shapes with rank k. */
    private static Tensor[] truncate(Tensor delta, int rank, long[] aShape, long[] bShape) {
        Linalg.Svd svd = Linalg.svd(delta);
        Tensor u = svd.u().narrow(1, 0, rank).mul(svd.s().narrow(0, 0, rank).unsqueeze(0));
        Tensor vh = svd.vh().narrow(0, 0, rank);
        long[] a = aShape.clone();
        long[] b = bShape.clone();
        a[0] = rank;
        b[1] = rank;
        return new Tensor[] {vh.reshape(a), u.reshape(b)};
    }

    private static double[] toArray(List<Double> v) {
        return v.stream().mapToDouble(Double::doubleValue).toArray();
    }
}
