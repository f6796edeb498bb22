package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Model-level LoRA operations: surgery (PEFT's {@code get_peft_model}, seed 001), marking only
 * the adapters trainable (loralib's {@code mark_only_lora_as_trainable}), the adapter's state
 * dict, merge / unmerge / merge-and-unload over a whole model.
 *
 * <p>All of these change the model: call them from one thread with no forward running.
 */
public final class Lora {

    private Lora() {}

    /** What {@link #wrap} did: the model (changed in place) and the paths it wrapped. */
    public record WrapReport(Module model, List<String> wrapped, List<String> excluded) {}

    /**
     * Replaces every selected layer of {@code model} by its LoRA wrapper (Linear →
     * {@link LoraLinear}, Embedding → {@link LoraEmbedding}, Conv1d/2d/3d → {@link LoraConv1d},
     * {@link LoraConv2d}, {@link LoraConv3d}),
     * then marks only the adapters (and the biases {@code config.bias()} names) trainable.
     * Selection follows {@link LoraConfig}'s {@code targetModules}, {@code targetRegex} and
     * {@code excludeModules}.
     *
     * @throws IllegalArgumentException when the config names targets and none matched
     */
    public static WrapReport wrap(Module model, LoraConfig config) {
        return wrap(model, config, Lora::wrapper);
    }

    /** Builds the adapter layer for one selected base layer (Linear, Embedding or Conv). */
    @FunctionalInterface
    public interface Wrapper {
        LoraLayer wrap(Module layer, LoraConfig config);
    }

    /**
     * As {@link #wrap(Module, LoraConfig)}, with {@code wrapper} building each adapter layer
     * (for example {@code DyLora::wrapper} for DyLoRA layers).
     */
    public static WrapReport wrap(Module model, LoraConfig config, Wrapper wrapper) {
        Objects.requireNonNull(wrapper, "wrapper");
        WrapReport report = inject(model, LoraLayer.DEFAULT_ADAPTER, config, (m, name, c) -> wrapper.wrap(m, c));
        markOnlyLoraAsTrainable(model, config.bias());
        return report;
    }

    /**
     * Adds adapter {@code name} to the layers {@code config} selects (PEFT's {@code add_adapter}):
     * layers that are LoRA layers already get a second adapter, plain Linear, Embedding and
     * Conv layers are wrapped. The new adapter is not active (see {@link #setAdapter}) unless
     * it is the first adapter of its layer; it is frozen while inactive.
     *
     * @throws IllegalArgumentException when the name is taken or the config names targets and none matched
     */
    public static WrapReport addAdapter(Module model, String name, LoraConfig config) {
        Objects.requireNonNull(name, "adapter name");
        if (adapterNames(model).contains(name)) throw new IllegalArgumentException("adapter '" + name + "' already exists");
        return inject(model, name, config, Lora::wrapper);
    }

    /** Builds the LoRA layer for one selected base layer holding adapter {@code name}. */
    private interface NamedWrapper {
        LoraLayer wrap(Module layer, String name, LoraConfig config);
    }

    private static WrapReport inject(Module model, String name, LoraConfig config, NamedWrapper wrapper) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(config, "config");
        List<String> wrapped = new ArrayList<>();
        List<String> excluded = new ArrayList<>();
        List<String> inside = new ArrayList<>();
        boolean hadAdapters = !adapterNames(model).isEmpty();
        for (var e : new LinkedHashMap<>(model.namedModules()).entrySet()) {
            String path = e.getKey();
            Module m = e.getValue();
            if (inside.stream().anyMatch(p -> path.startsWith(p + "."))) continue;
            if (m instanceof LoraLayer) inside.add(path);
            Module target = m instanceof LoraLayer l ? l.baseLayer() : m;
            if (path.isEmpty() || !isWrappable(target) || !selected(path, target, config)) continue;
            if (config.excludeModules().stream().anyMatch(x -> nameMatches(path, x))) {
                excluded.add(path);
                continue;
            }
            if (m instanceof LoraLayer l) {
                l.addAdapter(name, config);
            } else {
                int dot = path.lastIndexOf('.');
                Module parent = dot < 0 ? model : model.module(path.substring(0, dot));
                LoraLayer layer = wrapper.wrap(m, name, config);
                // As PEFT: the model's active adapters stay the active ones; a new name is not one.
                if (hadAdapters) layer.setActiveAdapters();
                parent.replaceChild(path.substring(dot + 1), layer);
            }
            wrapped.add(path);
        }
        boolean named = !config.targetModules().isEmpty() || config.targetRegex() != null;
        if (named && wrapped.isEmpty()) {
            throw new IllegalArgumentException("no module of the model matches target_modules " + config.targetModules()
                    + (config.targetRegex() != null ? " / regex " + config.targetRegex() : "") + "; modules are "
                    + model.namedModules().keySet());
        }
        return new WrapReport(model, List.copyOf(wrapped), List.copyOf(excluded));
    }

    private static boolean isWrappable(Module m) {
        return m instanceof Linear || m instanceof Embedding || m instanceof Conv;
    }

    private static boolean selected(String path, Module m, LoraConfig c) {
        if (c.targetRegex() != null) return Pattern.matches(c.targetRegex(), path);
        List<String> t = c.targetModules();
        if (t.isEmpty()) return true;
        if (t.size() == 1 && t.get(0).equals("all-linear")) return m instanceof Linear;
        return t.stream().anyMatch(x -> nameMatches(path, x));
    }

    private static boolean nameMatches(String path, String name) {
        return path.equals(name) || path.endsWith("." + name);
    }

    /** The plain LoRA wrapper of a Linear, Embedding or Conv layer, with adapter {@value LoraLayer#DEFAULT_ADAPTER}. */
    public static LoraLayer wrapper(Module m, LoraConfig config) {
        return wrapper(m, LoraLayer.DEFAULT_ADAPTER, config);
    }

    /** The plain LoRA wrapper of a Linear, Embedding or Conv layer, with adapter {@code name}. */
    public static LoraLayer wrapper(Module m, String name, LoraConfig config) {
        if (m instanceof Linear l) return new LoraLinear(l, name, config);
        if (m instanceof Embedding e) return new LoraEmbedding(e, name, config);
        if (m instanceof dev.lora4j.nn.Conv1d c) return new LoraConv1d(c, name, config);
        if (m instanceof dev.lora4j.nn.Conv2d c) return new LoraConv2d(c, name, config);
        if (m instanceof dev.lora4j.nn.Conv3d c) return new LoraConv3d(c, name, config);
        return new LoraConv((Conv) m, name, config);
    }

    private static boolean isLoraName(String name) {
        return name.contains("lora_");
    }

    /**
     * Makes only LoRA parameters (names containing {@code lora_}) require gradients, plus
     * every bias ({@code ALL}) or the biases of LoRA layers ({@code LORA_ONLY}).
     */
    public static void markOnlyLoraAsTrainable(Module model, LoraConfig.Bias bias) {
        Objects.requireNonNull(bias, "bias");
        Map<String, Tensor> params = model.namedParameters();
        List<String> loraBiases = loraLayerBiases(model);
        params.forEach((name, p) -> {
            boolean train = isLoraName(name)
                    || bias == LoraConfig.Bias.ALL && name.endsWith("bias")
                    || bias == LoraConfig.Bias.LORA_ONLY && loraBiases.contains(name);
            if (p.dtype().isFloatingPoint()) p.requiresGrad_(train);
        });
    }

    private static List<String> loraLayerBiases(Module model) {
        List<String> out = new ArrayList<>();
        model.namedModules().forEach((path, m) -> {
            if (m instanceof LoraLayer) {
                String b = (path.isEmpty() ? "" : path + ".") + "base_layer.bias";
                out.add(b);
            }
        });
        return out;
    }

    /**
     * The adapter's tensors by dotted name (loralib's {@code lora_state_dict}): lora_
     * parameters, plus biases as {@code bias} says. New handles sharing the model's storage,
     * owned by the caller.
     */
    public static Map<String, Tensor> loraStateDict(Module model, LoraConfig.Bias bias) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        List<String> loraBiases = loraLayerBiases(model);
        model.namedParameters().forEach((name, p) -> {
            boolean take = isLoraName(name)
                    || bias == LoraConfig.Bias.ALL && name.endsWith("bias")
                    || bias == LoraConfig.Bias.LORA_ONLY && loraBiases.contains(name);
            if (take) out.put(name, p.detach());
        });
        return out;
    }

    /** Every LoRA layer of the model by path. */
    public static Map<String, LoraLayer> loraLayers(Module model) {
        Map<String, LoraLayer> out = new LinkedHashMap<>();
        model.namedModules().forEach((path, m) -> {
            if (m instanceof LoraLayer l) out.put(path, l);
        });
        return out;
    }

    /**
     * Merges the named adapters (none named: each layer's active ones) into every LoRA layer
     * holding them (see {@link LoraLayer#merge(boolean, String...)}); returns how many layers
     * merged something now.
     *
     * @throws IllegalArgumentException when a name is no adapter of the model
     */
    public static int merge(Module model, boolean safe, String... names) {
        requireKnown(model, names);
        int n = 0;
        for (LoraLayer l : loraLayers(model).values()) {
            String[] here = names.length == 0 ? new String[0] : java.util.Arrays.stream(names).filter(l::hasAdapter).toArray(String[]::new);
            if (names.length > 0 && here.length == 0) continue;
            if (l.merge(safe, here)) n++;
        }
        return n;
    }

    /** Unmerges every merged LoRA layer; returns how many. */
    public static int unmerge(Module model) {
        int n = 0;
        for (LoraLayer l : loraLayers(model).values()) if (l.isMerged() && l.unmerge()) n++;
        return n;
    }

    /** Switches every LoRA layer's adapter on or off. */
    public static void setAdaptersEnabled(Module model, boolean enabled) {
        loraLayers(model).values().forEach(l -> l.setAdapterEnabled(enabled));
    }

    /**
     * Switches every LoRA adapter of the model off until the returned scope closes, then back to
     * what it was, even when the block throws (PEFT's {@code with model.disable_adapter():}).
     * Merged adapters are unmerged while disabled and stay unmerged afterwards. Open and close it
     * on the thread that trains or serves the model, with no concurrent forwards.
     */
    public static AdapterScope disableAdapters(Module model) {
        Map<LoraLayer, Boolean> before = new LinkedHashMap<>();
        loraLayers(model).values().forEach(l -> before.put(l, l.isAdapterEnabled()));
        before.keySet().forEach(l -> l.setAdapterEnabled(false));
        return new AdapterScope(before);
    }

    /** Restores the adapters' enabled flags when closed; see {@link #disableAdapters}. Idempotent. */
    public static final class AdapterScope implements AutoCloseable {
        private final Map<LoraLayer, Boolean> before;
        private boolean closed;

        private AdapterScope(Map<LoraLayer, Boolean> before) {
            this.before = before;
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            before.forEach((l, enabled) -> {
                if (!l.isClosed()) l.setAdapterEnabled(enabled);
            });
        }
    }

    // ------------------------------------------------------------------ named adapters

    /** Every adapter name of the model's LoRA layers, in the order first seen. */
    public static List<String> adapterNames(Module model) {
        java.util.LinkedHashSet<String> names = new java.util.LinkedHashSet<>();
        loraLayers(model).values().forEach(l -> names.addAll(l.adapterNames()));
        return List.copyOf(names);
    }

    /** The adapters active in at least one LoRA layer, in the order first seen. */
    public static List<String> activeAdapters(Module model) {
        java.util.LinkedHashSet<String> names = new java.util.LinkedHashSet<>();
        loraLayers(model).values().forEach(l -> names.addAll(l.activeAdapters()));
        return List.copyOf(names);
    }

    /**
     * Makes {@code names} the active adapters of every LoRA layer (PEFT's {@code set_adapter}),
     * each layer taking those it holds; only their factors require gradients. No names: every
     * layer computes its base output only.
     *
     * @throws IllegalArgumentException when a name is no adapter of the model
     */
    public static void setAdapter(Module model, String... names) {
        requireKnown(model, names);
        for (LoraLayer l : loraLayers(model).values()) {
            l.setActiveAdapters(java.util.Arrays.stream(names).filter(l::hasAdapter).toArray(String[]::new));
        }
    }

    /**
     * Deletes adapter {@code name} from every LoRA layer holding it and frees its factors
     * (PEFT's {@code delete_adapter}). The layers stay LoRA layers, possibly with no adapter.
     *
     * @throws IllegalArgumentException when no layer holds it
     * @throws IllegalStateException when it is merged somewhere (unmerge first; nothing is deleted)
     */
    public static void deleteAdapter(Module model, String name) {
        requireKnown(model, new String[] {name});
        List<LoraLayer> holding = loraLayers(model).values().stream().filter(l -> l.hasAdapter(name)).toList();
        for (LoraLayer l : holding) {
            if (l.mergedAdapters().contains(name)) throw new IllegalStateException("adapter '" + name + "' is merged: unmerge before deleting it");
        }
        holding.forEach(l -> l.deleteAdapter(name));
    }

    /**
     * Adds adapter {@code newName}, a weighted combination of {@code adapters} (PEFT's
     * {@code add_weighted_adapter}), to every LoRA layer holding at least one of them. It is
     * added inactive: {@link #setAdapter} it to use it.
     *
     * @param svdRank the rank for {@link Combination#SVD}; 0 for the largest rank of the adapters
     * @throws IllegalArgumentException for unknown or taken names, a weight count that differs,
     *     non-finite weights, or LINEAR on adapters of different ranks
     */
    public static void addWeightedAdapter(Module model, List<String> adapters, double[] weights, String newName,
                                          Combination type, int svdRank) {
        if (type != null && type.usesDensity()) {
            throw new IllegalArgumentException(type + " needs a density: use addWeightedAdapter(..., density, majoritySignMethod)");
        }
        addWeightedAdapter(model, adapters, weights, newName, type, svdRank, 1.0, MergeUtils.MajoritySign.TOTAL);
    }

    /**
     * As {@link #addWeightedAdapter(Module, List, double[], String, Combination, int)}, with
     * {@code density} (the fraction of values kept, in [0, 1]) and {@code majoritySignMethod}
     * for the pruning types {@link Combination#TIES}, {@link Combination#DARE_LINEAR},
     * {@link Combination#DARE_TIES} and {@link Combination#MAGNITUDE_PRUNE} (PEFT's
     * {@code density=} and {@code majority_sign_method=}; ignored by the other types), and
     * their _SVD forms, which prune the ΔW and truncate by SVD to {@code svdRank}. The
     * pruning types on factors need adapters of one rank; all accept negative weights; DARE's
     * random masks follow {@link dev.lora4j.Torch#manualSeed}.
     *
     * @throws IllegalArgumentException as the other overload, or for a density outside [0, 1]
     * @throws UnsupportedOperationException when an adapter to combine is a DoRA adapter
     */
    public static void addWeightedAdapter(Module model, List<String> adapters, double[] weights, String newName,
                                          Combination type, int svdRank, double density, MergeUtils.MajoritySign majoritySignMethod) {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(majoritySignMethod, "majoritySignMethod");
        if (!(density >= 0 && density <= 1)) throw new IllegalArgumentException("density must be in [0, 1], got " + density);
        Objects.requireNonNull(adapters, "adapters");
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(newName, "newName");
        if (adapters.isEmpty() || adapters.size() != weights.length) {
            throw new IllegalArgumentException(adapters.size() + " adapters and " + weights.length + " weights: give one weight per adapter");
        }
        for (double w : weights) if (!Double.isFinite(w)) throw new IllegalArgumentException("weights must be finite, got " + w);
        if (svdRank < 0) throw new IllegalArgumentException("svdRank must be >= 0, got " + svdRank);
        requireKnown(model, adapters);
        if (adapterNames(model).contains(newName)) throw new IllegalArgumentException("adapter '" + newName + "' already exists");
        Collection<LoraLayer> layers = loraLayers(model).values();
        for (LoraLayer l : layers) {
            for (String n : adapters) {
                if (l instanceof LoraLinear ll && ll.hasAdapter(n) && ll.dora(n) != null) {
                    throw new UnsupportedOperationException("adapter '" + n + "' is a DoRA adapter: weighted combination would drop its magnitude");
                }
            }
        }
        if (type.usesDensity()) {
            for (LoraLayer l : layers) TaskArithmeticAdapters.check(l, adapters, type, svdRank); // all layers before any change
            for (LoraLayer l : layers) TaskArithmeticAdapters.combine(l, adapters, weights, newName, type, svdRank, density, majoritySignMethod);
            return;
        }
        for (LoraLayer l : layers) WeightedAdapters.check(l, adapters, weights, type, svdRank); // all layers before any change
        for (LoraLayer l : layers) WeightedAdapters.combine(l, adapters, weights, newName, type, svdRank);
    }

    /**
     * The model's output for a batch whose row i uses adapter {@code rowAdapters[i]}
     * ({@link AdapterBank#BASE} for the base model alone), PEFT's {@code adapter_names=}
     * argument. Linear layers compute every row in one fused call in inference (no gradients);
     * other layers run each adapter on its rows. Active adapters do not matter here. Safe from
     * many threads at once on a model in eval mode.
     *
     * @throws IllegalArgumentException for a name that is no adapter of the model, or a
     *     count of names that differs from the batch size
     * @throws IllegalStateException when adapters are merged
     */
    public static Tensor forward(Module model, Tensor input, String... rowAdapters) {
        Objects.requireNonNull(input, "input");
        String[] rows = rowAdapters.clone();
        java.util.Set<String> known = new java.util.HashSet<>(adapterNames(model));
        for (int i = 0; i < rows.length; i++) {
            Objects.requireNonNull(rows[i], "rowAdapters[" + i + "]");
            if (!rows[i].equals(AdapterBank.BASE) && !known.contains(rows[i])) {
                throw new IllegalArgumentException("no adapter named '" + rows[i] + "' (have " + adapterNames(model) + ", or '"
                        + AdapterBank.BASE + "' for none)");
            }
        }
        if (input.dim() == 0 || input.size(0) != rows.length) {
            throw new IllegalArgumentException(rows.length + " adapter names for a batch of " + (input.dim() == 0 ? 0 : input.size(0)) + " rows");
        }
        return LoraLayer.withRowAdapters(rows, () -> model.forward(input));
    }

    private static void requireKnown(Module model, String[] names) {
        requireKnown(model, java.util.Arrays.asList(names));
    }

    private static void requireKnown(Module model, List<String> names) {
        Objects.requireNonNull(names, "adapter names");
        List<String> have = adapterNames(model);
        for (String n : names) {
            Objects.requireNonNull(n, "adapter name");
            if (!have.contains(n)) throw new IllegalArgumentException("no adapter named '" + n + "' (have " + have + ")");
        }
    }

    /**
     * Merges every LoRA layer and puts its base layer back in its place (PEFT's
     * {@code merge_and_unload}); the adapters are closed. Returns the model.
     */
    public static Module mergeAndUnload(Module model, boolean safe) {
        for (var e : loraLayers(model).entrySet()) {
            String path = e.getKey();
            if (path.isEmpty()) throw new IllegalArgumentException("the model itself is a LoRA layer: use its mergeAndUnload");
            int dot = path.lastIndexOf('.');
            Module parent = dot < 0 ? model : model.module(path.substring(0, dot));
            parent.replaceChild(path.substring(dot + 1), e.getValue().mergeAndUnload(safe));
        }
        return model;
    }
}
