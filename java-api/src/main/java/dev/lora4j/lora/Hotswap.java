package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Replaces a loaded adapter's weights in place (PEFT's {@code hotswap_adapter_from_state_dict}
 * and {@code prepare_model_for_compiled_hotswap}), so a serving model keeps its adapter names,
 * tensor identities and shapes: only values and scales change. A new adapter of the same rank
 * is copied; one of a smaller rank is zero-padded into the existing factors (A's first rows, B's
 * first columns; the rest zeros), which gives exactly its ΔW with its own scale. Pad the model's
 * adapters once to the largest rank to come with {@link #prepare}. Layers that hold the adapter
 * but get no new weights have A and B zeroed (and a DoRA magnitude reset to ‖W‖), so they add
 * nothing, as in PEFT. Everything is checked before anything changes.
 *
 * <p>Thread-safety: each call is one adapter change ({@link AdapterLock}): it waits for running
 * forwards of the model, and forwards see the adapter before the swap or after it, never a mix.
 * Mixed-batch banks see the new values on their next use.
 */
public final class Hotswap {

    private Hotswap() {}

    /**
     * The new weights for one layer: A (r, …) and B (…, r) in the layer's factor layout, the
     * DoRA magnitude (null for plain LoRA) and the scale s (α/r or α/√r from the new config).
     * The tensors are read, not kept.
     */
    public record Update(Tensor a, Tensor b, Tensor magnitude, double scaling) {
        public Update {
            Objects.requireNonNull(a, "a");
            Objects.requireNonNull(b, "b");
            if (!Double.isFinite(scaling)) throw new IllegalArgumentException("scaling must be finite, got " + scaling);
        }
    }

    /**
     * Pads every adapter of the model's {@link LoraLinear} layers to rank {@code targetRank}
     * with zeros (ΔW and scales unchanged), so later swaps of any rank up to it keep shapes.
     * Adapters of that rank or larger are left alone.
     *
     * @return how many adapters were padded
     * @throws IllegalArgumentException for a rank below 1
     * @throws UnsupportedOperationException when another kind of LoRA layer holds an adapter of a smaller rank
     * @throws IllegalStateException when an adapter to pad is merged
     */
    public static int prepare(Module model, int targetRank) {
        Objects.requireNonNull(model, "model");
        if (targetRank < 1) throw new IllegalArgumentException("targetRank must be >= 1, got " + targetRank);
        return AdapterLock.changing(model, () -> prepareLocked(model, targetRank));
    }

    private static int prepareLocked(Module model, int targetRank) {
        Map<String, LoraLayer> layers = Lora.loraLayers(model);
        for (var e : layers.entrySet()) {
            for (String n : e.getValue().adapterNames()) {
                if (e.getValue().config(n).r() >= targetRank) continue;
                if (!(e.getValue() instanceof LoraLinear)) {
                    throw new UnsupportedOperationException(e.getKey() + ": padding is supported for LoraLinear layers, this is a "
                            + e.getValue().getClass().getSimpleName());
                }
                if (e.getValue().mergedAdapters().contains(n)) throw new IllegalStateException(e.getKey() + ": adapter '" + n + "' is merged");
            }
        }
        int padded = 0;
        for (LoraLayer l : layers.values()) {
            for (String n : l.adapterNames()) {
                LoraConfig c = l.config(n);
                if (c.r() >= targetRank) continue;
                ((LoraLinear) l).padRank(n, targetRank, withScale(c, targetRank, c.scaling()));
                padded++;
            }
        }
        return padded;
    }

    /**
     * Overwrites adapter {@code adapterName} of the model's LoRA layers with {@code updates}
     * (by module path, as {@link Lora#loraLayers} names them).
     *
     * @throws IllegalArgumentException when a path is no LoRA layer holding the adapter, a
     *     shape does not fit (a larger rank than the layer's: use {@link #prepare} first), a
     *     magnitude is given for a plain adapter or missing for a DoRA one, or the adapter is unknown
     * @throws IllegalStateException when the adapter is merged in a layer
     */
    public static void swap(Module model, String adapterName, Map<String, Update> updates) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(adapterName, "adapterName");
        Objects.requireNonNull(updates, "updates");
        AdapterLock.changing(model, () -> {
            swapLocked(model, adapterName, updates);
            return null;
        });
    }

    private static void swapLocked(Module model, String adapterName, Map<String, Update> updates) {
        Map<String, LoraLayer> holding = new LinkedHashMap<>();
        Lora.loraLayers(model).forEach((p, l) -> {
            if (l.hasAdapter(adapterName)) holding.put(p, l);
        });
        if (holding.isEmpty()) throw new IllegalArgumentException("no LoRA layer holds adapter '" + adapterName + "'");
        List<String> unexpected = new ArrayList<>();
        for (var e : updates.entrySet()) {
            LoraLayer l = holding.get(e.getKey());
            if (l == null) {
                unexpected.add(e.getKey());
                continue;
            }
            check(e.getKey(), l, adapterName, Objects.requireNonNull(e.getValue(), "update of " + e.getKey()));
        }
        if (!unexpected.isEmpty()) {
            throw new IllegalArgumentException("hot-swapping adapter '" + adapterName + "' failed: no LoRA layer holding it at " + unexpected
                    + " (layers holding it: " + holding.keySet() + ")");
        }
        for (var e : holding.entrySet()) {
            if (e.getValue().mergedAdapters().contains(adapterName)) {
                throw new IllegalStateException(e.getKey() + ": adapter '" + adapterName + "' is merged: unmerge before hot-swapping");
            }
        }
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            for (var e : holding.entrySet()) {
                LoraLayer l = e.getValue();
                Update u = updates.get(e.getKey());
                Tensor a = l.loraA(adapterName);
                Tensor b = l.loraB(adapterName);
                a.zero_();
                b.zero_();
                DoraLinearLayer dora = l instanceof LoraLinear ll ? ll.dora(adapterName) : null;
                LoraConfig c = l.config(adapterName);
                if (u == null) {
                    if (dora != null) {
                        Tensor w = l.baseLayer().parameter("weight");
                        Tensor wOutIn = c.fanInFanOut() ? w.t() : w;
                        dora.weight().copy_(wOutIn.mul(wOutIn).sum(1).sqrt());
                    }
                    continue;
                }
                a.narrow(0, 0, u.a().size(0)).copy_(u.a());
                b.narrow(1, 0, u.b().size(1)).copy_(u.b());
                if (dora != null) dora.weight().copy_(u.magnitude());
                l.replaceConfig(adapterName, withScale(c, c.r(), u.scaling()));
            }
        }
    }

    private static void check(String path, LoraLayer l, String name, Update u) {
        if (l instanceof MergedLoraLinear || !(l instanceof LoraLinear || l instanceof LoraEmbedding || l instanceof LoraConv)) {
            throw new IllegalArgumentException(path + ": " + l.getClass().getSimpleName() + " cannot be hot-swapped");
        }
        long[] a = l.loraA(name).shape();
        long[] b = l.loraB(name).shape();
        long[] na = u.a().shape();
        long[] nb = u.b().shape();
        long r = na.length > 0 ? na[0] : -1;
        boolean fits = na.length == a.length && nb.length == b.length && r >= 1 && r <= a[0] && nb.length >= 2 && nb[1] == r
                && Arrays.equals(Arrays.copyOfRange(na, 1, na.length), Arrays.copyOfRange(a, 1, a.length))
                && nb[0] == b[0] && Arrays.equals(Arrays.copyOfRange(nb, 2, nb.length), Arrays.copyOfRange(b, 2, b.length));
        if (!fits) {
            throw new IllegalArgumentException(path + ": new factors " + Arrays.toString(na) + " and " + Arrays.toString(nb)
                    + " do not fit A " + Arrays.toString(a) + " and B " + Arrays.toString(b)
                    + " (same layout, rank at most " + a[0] + "; pad the model to a larger rank with Hotswap.prepare)");
        }
        DoraLinearLayer dora = l instanceof LoraLinear ll ? ll.dora(name) : null;
        if ((dora != null) != (u.magnitude() != null)) {
            throw new IllegalArgumentException(path + ": adapter '" + name + "' is " + (dora != null ? "a DoRA adapter and the update has no magnitude"
                    : "a plain LoRA adapter and the update has a DoRA magnitude"));
        }
        if (dora != null && !Arrays.equals(u.magnitude().shape(), dora.weight().shape())) {
            throw new IllegalArgumentException(path + ": magnitude " + Arrays.toString(u.magnitude().shape()) + " does not fit "
                    + Arrays.toString(dora.weight().shape()));
        }
    }

    /** {@code c} with rank {@code r} and the α that gives scale {@code scale} at that rank. */
    private static LoraConfig withScale(LoraConfig c, int r, double scale) {
        double alpha = c.useRslora() ? scale * Math.sqrt(r) : scale * r;
        return c.withR(r).withAlpha(alpha);
    }
}
