package dev.lora4j.lora;

import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.ArrayList;
import java.util.List;

/** PEFT's {@code add_weighted_adapter} for one layer: builds the new adapter's factors. */
final class WeightedAdapters {

    private WeightedAdapters() {}

    /** The adapters of {@code adapters} that {@code layer} holds, in order. */
    private static List<String> present(LoraLayer layer, List<String> adapters) {
        return adapters.stream().filter(layer::hasAdapter).toList();
    }

    /**
     * Checks that {@code layer} can combine its share of {@code adapters} and returns the new
     * rank (0 when it holds none of them), so that a model is checked before any layer changes.
     */
    static int check(LoraLayer layer, List<String> adapters, double[] weights, Combination type, int svdRank) {
        List<String> names = present(layer, adapters);
        if (names.isEmpty()) return 0;
        if (layer.baseLayer() instanceof dev.lora4j.nn.Conv c && c.groups() > 1) {
            throw new UnsupportedOperationException("weighted combination of adapters on grouped convolutions is not supported");
        }
        return switch (type) {
            case LINEAR -> {
                for (int i = 0; i < adapters.size(); i++) {
                    if (weights[i] < 0) {
                        throw new IllegalArgumentException("LINEAR combination takes √(weight·scale): weight " + weights[i] + " of '"
                                + adapters.get(i) + "' is negative (use CAT or SVD for negative weights)");
                    }
                }
                int r = layer.config(names.get(0)).r();
                for (String n : names) {
                    if (layer.config(n).r() != r) {
                        throw new IllegalArgumentException("LINEAR combination needs adapters of one rank, got " + ranks(layer, names)
                                + " (use CAT or SVD)");
                    }
                }
                yield r;
            }
            case CAT -> names.stream().mapToInt(n -> layer.config(n).r()).sum();
            case SVD -> {
                int r = svdRank > 0 ? svdRank : names.stream().mapToInt(n -> layer.config(n).r()).max().orElseThrow();
                Tensor b = layer.loraB(names.get(0));
                Tensor a = layer.loraA(names.get(0));
                long k = Math.min(b.size(0), a.numel() / a.size(0));
                if (r > k) throw new IllegalArgumentException("SVD rank " + r + " exceeds min(out, in) = " + k + " of " + layer.getClass().getSimpleName());
                yield r;
            }
            default -> throw new IllegalArgumentException(type + " is combined by TaskArithmeticAdapters");
        };
    }

    /**
     * Adds adapter {@code newName} to {@code layer}, combining those of {@code adapters} it
     * holds (weights alike), after {@link #check}; does nothing when it holds none of them.
     */
    static void combine(LoraLayer layer, List<String> adapters, double[] weights, String newName, Combination type,
                        int svdRank) {
        int rank = check(layer, adapters, weights, type, svdRank);
        if (rank == 0) return;
        List<String> names = new ArrayList<>();
        List<Double> w = new ArrayList<>();
        for (int i = 0; i < adapters.size(); i++) {
            if (layer.hasAdapter(adapters.get(i))) {
                names.add(adapters.get(i));
                w.add(weights[i]);
            }
        }
        LoraConfig first = layer.config(names.get(0));
        LoraConfig config = new LoraConfig(rank, rank, first.loraDropout(), first.fanInFanOut(), false, TaskArithmeticAdapters.initOf(first),
                first.targetModules(), first.targetRegex(), first.excludeModules(), first.bias());
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor[] ab = switch (type) {
                case LINEAR -> linear(layer, names, w);
                case CAT -> cat(layer, names, w);
                case SVD -> svd(layer, names, w, rank);
                default -> throw new IllegalArgumentException(type + " is combined by TaskArithmeticAdapters");
            };
            layer.addAdapter(newName, config);
            layer.loraA(newName).copy_(ab[0]);
            layer.loraB(newName).copy_(ab[1]);
        }
    }

    private static List<Integer> ranks(LoraLayer layer, List<String> names) {
        return names.stream().map(n -> layer.config(n).r()).toList();
    }

    private static Tensor[] linear(LoraLayer layer, List<String> names, List<Double> w) {
        Tensor a = null;
        Tensor b = null;
        for (int i = 0; i < names.size(); i++) {
            double f = Math.sqrt(w.get(i) * layer.scaling(names.get(i)));
            Tensor ai = layer.loraA(names.get(i)).mul(f);
            Tensor bi = layer.loraB(names.get(i)).mul(f);
            a = a == null ? ai : a.add(ai);
            b = b == null ? bi : b.add(bi);
        }
        return new Tensor[] {a, b};
    }

    private static Tensor[] cat(LoraLayer layer, List<String> names, List<Double> w) {
        List<Tensor> as = new ArrayList<>();
        List<Tensor> bs = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            as.add(layer.loraA(names.get(i)).mul(w.get(i) * layer.scaling(names.get(i))));
            bs.add(layer.loraB(names.get(i)));
        }
        return new Tensor[] {Tensor.cat(as, 0), Tensor.cat(bs, 1)};
    }

    /** SVD of Σ wᵢ·sᵢ·Bᵢ·Aᵢ in the factors' layout (out, in·k…), cut to {@code rank}. */
    private static Tensor[] svd(LoraLayer layer, List<String> names, List<Double> w, int rank) {
        Tensor sum = null;
        long[] aShape = null;
        long[] bShape = null;
        for (int i = 0; i < names.size(); i++) {
            Tensor a = layer.loraA(names.get(i));
            Tensor b = layer.loraB(names.get(i));
            long r = a.size(0);
            aShape = a.shape();
            bShape = b.shape();
            Tensor d = b.reshape(b.size(0), r).matmul(a.reshape(r, -1)).mul(w.get(i) * layer.scaling(names.get(i)));
            sum = sum == null ? d : sum.add(d);
        }
        Linalg.Svd svd = Linalg.svd(sum);
        Tensor u = svd.u().narrow(1, 0, rank).mul(svd.s().narrow(0, 0, rank).unsqueeze(0));
        Tensor vh = svd.vh().narrow(0, 0, rank);
        aShape[0] = rank;
        bShape[1] = rank;
        return new Tensor[] {vh.reshape(aShape), u.reshape(bShape)};
    }
}
