package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.TorchException;
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
 * nothing, as in PEFT. A swap is all-or-nothing across the model's layers: everything is checked,
 * and every update read into temporaries (with a copy of the old values), before the first layer
 * changes, so a swap that fails leaves every layer as it was, and an update may be (a view of) one
 * of the model's own factors. It takes about three times the adapter's size in temporary memory.
 *
 * <p>Thread-safety: each call is one adapter change ({@link AdapterLock}): it waits for running
 * forwards of the model, and forwards see the adapter before the swap or after it, never a mix.
 * Mixed-batch banks see the new values on their next use.
 */
public final class Hotswap {

    private Hotswap() {}

    /**
     * The new weights for one layer: A (r, …) and B (…, r) in the layer's factor layout, the
     * DoRA magnitude (null for plain LoRA) and the scale s (α/r or α/√r from the new config;
     * finite and &gt; 0, as α). The tensors are read, not kept, and must stay open until the swap
     * returns.
     */
    public record Update(Tensor a, Tensor b, Tensor magnitude, double scaling) {
        public Update {
            Objects.requireNonNull(a, "a");
            Objects.requireNonNull(b, "b");
            if (!(scaling > 0) || Double.isInfinite(scaling)) {
                throw new IllegalArgumentException("scaling must be finite and > 0 (as lora_alpha), got " + scaling);
            }
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
     * On any exception nothing has changed.
     *
     * @throws IllegalArgumentException when a path is no LoRA layer holding the adapter, a
     *     shape does not fit (a larger rank than the layer's: use {@link #prepare} first), a
     *     magnitude is given for a plain adapter or missing for a DoRA one, a scale gives an α the
     *     layer's config cannot take (it overflows), an update cannot be copied into the adapter's
     *     type, or the adapter is unknown (messages start with the layer's path)
     * @throws IllegalStateException when the adapter is merged in a layer, or an update's tensor is closed
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
            // Read every update into temporaries and keep the old values before the first write,
            // so a failure anywhere (an update closed after check(), one that cannot be copied, a
            // scale the config cannot take) changes nothing, and an update may alias the model's
            // own factors (even another layer's).
            List<Staged> staged = new ArrayList<>(holding.size());
            for (var e : holding.entrySet()) staged.add(stage(e.getKey(), e.getValue(), adapterName, updates.get(e.getKey())));
            int started = 0;
            try {
                for (Staged st : staged) {
                    started++;
                    st.write(st.a, st.b, st.magnitude, st.config);
                }
            } catch (RuntimeException | Error failure) {
                for (int i = 0; i < started; i++) {
                    Staged st = staged.get(i);
                    try {
                        st.write(st.oldA, st.oldB, st.oldMagnitude, st.oldConfig);
                    } catch (RuntimeException | Error restore) {
                        failure.addSuppressed(restore);
                    }
                }
                throw failure;
            }
        }
    }

    /**
     * One layer's swap, read and ready: the new values (temporaries of the factors' own shapes and
     * types) and the old ones, to write back when a later layer fails.
     */
    private record Staged(LoraLayer layer, String name, DoraLinearLayer dora, Tensor a, Tensor b, Tensor magnitude, LoraConfig config,
                          Tensor oldA, Tensor oldB, Tensor oldMagnitude, LoraConfig oldConfig) {

        /** Writes these values into the layer's factors, magnitude (DoRA) and config. Under no-grad. */
        void write(Tensor newA, Tensor newB, Tensor newMagnitude, LoraConfig newConfig) {
            layer.loraA(name).copy_(newA);
            layer.loraB(name).copy_(newB);
            if (dora != null) dora.weight().copy_(newMagnitude);
            layer.replaceConfig(name, newConfig);
        }
    }

    /** Reads update {@code u} (null: zeros) for layer {@code l} into temporaries. Changes nothing. Under no-grad, in a scope. */
    private static Staged stage(String path, LoraLayer l, String name, Update u) {
        Tensor a = l.loraA(name);
        Tensor b = l.loraB(name);
        DoraLinearLayer dora = l instanceof LoraLinear ll ? ll.dora(name) : null;
        LoraConfig c = l.config(name);
        Tensor newA = a.clone().zero_();
        Tensor newB = b.clone().zero_();
        Tensor newMagnitude = null;
        LoraConfig config = c;
        if (u == null) {
            if (dora != null) {
                Tensor w = l.baseLayer().parameter("weight");
                Tensor wOutIn = c.fanInFanOut() ? w.t() : w;
                newMagnitude = dora.weight().clone();
                newMagnitude.copy_(wOutIn.mul(wOutIn).sum(1).sqrt());
            }
        } else {
            read(path, "A", newA.narrow(0, 0, u.a().size(0)), u.a());
            read(path, "B", newB.narrow(1, 0, u.b().size(1)), u.b());
            if (dora != null) {
                newMagnitude = dora.weight().clone();
                read(path, "magnitude", newMagnitude, u.magnitude());
            }
            try {
                config = withScale(c, c.r(), u.scaling());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(path + ": scaling " + u.scaling() + " does not fit the adapter's config: " + e.getMessage(), e);
            }
        }
        return new Staged(l, name, dora, newA, newB, newMagnitude, config, a.clone(), b.clone(), dora != null ? dora.weight().clone() : null, c);
    }

    /** Copies the update's tensor {@code what} into {@code into}, naming the layer when it cannot be read. */
    private static void read(String path, String what, Tensor into, Tensor from) {
        try {
            into.copy_(from);
        } catch (IllegalStateException e) {
            throw new IllegalStateException(path + ": the update's " + what + " cannot be read: " + e.getMessage(), e);
        } catch (TorchException e) {
            throw new IllegalArgumentException(path + ": the update's " + what + " cannot be copied into the adapter's: " + e.getMessage(), e);
        }
    }

    private static void check(String path, LoraLayer l, String name, Update u) {
        if (l instanceof MergedLoraLinear || !(l instanceof LoraLinear || l instanceof LoraEmbedding || l instanceof LoraConv)) {
            throw new IllegalArgumentException(path + ": " + l.getClass().getSimpleName() + " cannot be hot-swapped");
        }
        open(path, "A", u.a());
        open(path, "B", u.b());
        if (u.magnitude() != null) open(path, "magnitude", u.magnitude());
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

    private static void open(String path, String what, Tensor t) {
        if (t.isClosed()) throw new IllegalStateException(path + ": the update's " + what + " is closed");
    }

    /** {@code c} with rank {@code r} and the α that gives scale {@code scale} at that rank. */
    private static LoraConfig withScale(LoraConfig c, int r, double scale) {
        double alpha = c.useRslora() ? scale * Math.sqrt(r) : scale * r;
        return c.withR(r).withAlpha(alpha);
    }
}
