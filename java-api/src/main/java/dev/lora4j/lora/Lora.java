package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.HfConv1D;
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
 * <p>Threads: the operations that change adapters (wrap, add, delete, set, merge, unmerge,
 * weighted add, merge-and-unload, enable/disable) may run while other threads run
 * {@link #forward(Module, Tensor)} or {@link #forward(Module, Tensor, String...)} on the same
 * model in eval mode: each change waits for the running forwards and the forwards after it see
 * it whole; no forward sees two states (see {@link AdapterLock} for the rule, and
 * {@link AdapterLock#changing} to make several changes one). Training is single-threaded per
 * model, as {@link Module} says.
 */
public final class Lora {

    private Lora() {}

    /** What {@link #wrap} did: the model (changed in place) and the paths it wrapped. */
    public record WrapReport(Module model, List<String> wrapped, List<String> excluded) {}

    /**
     * Replaces every selected layer of {@code model} by its LoRA wrapper (Linear and GPT-2's
     * {@link HfConv1D} → {@link LoraLinear}, Embedding → {@link LoraEmbedding}, Conv1d/2d/3d → {@link LoraConv1d},
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
        return AdapterLock.changing(model, () -> {
            WrapReport report = inject(model, LoraLayer.DEFAULT_ADAPTER, config, (m, name, c) -> wrapper.wrap(m, c));
            markOnlyLoraAsTrainable(model, config.bias());
            return report;
        });
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
        return AdapterLock.changing(model, () -> {
            if (names(model).contains(name)) throw new IllegalArgumentException("adapter '" + name + "' already exists");
            return inject(model, name, config, Lora::wrapper);
        });
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
        boolean hadAdapters = !names(model).isEmpty();
        if (model instanceof LoraLayer root) { // the model is one LoRA layer: the adapter goes into it, not into its parts
            root.addAdapter(name, config); // active only if it is the layer's first, as for any LoRA layer
            return new WrapReport(model, List.of(""), List.of());
        }
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
        return m instanceof Linear || m instanceof HfConv1D || m instanceof Embedding || m instanceof Conv;
    }

    private static boolean selected(String path, Module m, LoraConfig c) {
        if (c.targetRegex() != null) return Pattern.matches(c.targetRegex(), path);
        List<String> t = c.targetModules();
        if (t.isEmpty()) return true;
        if (t.size() == 1 && t.get(0).equals("all-linear")) return m instanceof Linear || m instanceof HfConv1D;
        return t.stream().anyMatch(x -> nameMatches(path, x));
    }

    private static boolean nameMatches(String path, String name) {
        return path.equals(name) || path.endsWith("." + name);
    }

    /** The plain LoRA wrapper of a Linear, Embedding or Conv layer, with adapter {@value LoraLayer#DEFAULT_ADAPTER}. */
    public static LoraLayer wrapper(Module m, LoraConfig config) {
        return wrapper(m, LoraLayer.DEFAULT_ADAPTER, config);
    }

    /**
     * The plain LoRA wrapper of a Linear, {@link HfConv1D}, Embedding or Conv layer, with adapter
     * {@code name}; {@code fanInFanOut} is set to the layer's layout (see {@link LoraLinear}).
     */
    public static LoraLayer wrapper(Module m, String name, LoraConfig config) {
        if (m instanceof Linear || m instanceof HfConv1D) return new LoraLinear(m, name, config);
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
        loraLayers(model).values().forEach(l -> {
            l.freezeMerged(); // merged factors stay frozen until unmerged
            l.freezeInactive(); // inactive adapters stay frozen, as PEFT's set_adapter leaves them
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
        return AdapterLock.changing(model, () -> {
            requireKnown(model, names);
            Map<LoraLayer, String[]> todo = new LinkedHashMap<>();
            for (LoraLayer l : loraLayers(model).values()) {
                String[] here = names.length == 0 ? new String[0] : java.util.Arrays.stream(names).filter(l::hasAdapter).toArray(String[]::new);
                if (names.length > 0 && here.length == 0) continue;
                todo.put(l, here);
            }
            requireOwnBase(model, todo.keySet());
            if (safe) todo.forEach(LoraLayer::checkMerge); // every layer before any changes
            int n = 0;
            for (var e : todo.entrySet()) if (e.getKey().merge(safe, e.getValue())) n++;
            return n;
        });
    }

    /**
     * Refuses to merge into a base layer the model uses at another place too (a module shared by
     * two paths, wrapped at both or at one): its weight would carry the update at every place,
     * and two adapters' updates where it is wrapped twice. Unmerged forwards are right either way.
     */
    private static void requireOwnBase(Module model, java.util.Collection<LoraLayer> layers) {
        Map<Module, String> where = new java.util.IdentityHashMap<>();
        Map<Module, String> bases = new java.util.IdentityHashMap<>();
        for (LoraLayer l : layers) bases.put(l.baseLayer(), null);
        for (var e : model.namedModules().entrySet()) {
            if (!bases.containsKey(e.getValue())) continue;
            String other = where.put(e.getValue(), e.getKey());
            if (other != null) {
                throw new IllegalStateException("cannot merge: the base layer at '" + other + "' is also at '" + e.getKey()
                        + "' (one module used twice); merging would change it at both places");
            }
        }
    }

    /** Unmerges every merged LoRA layer; returns how many. */
    public static int unmerge(Module model) {
        return AdapterLock.changing(model, () -> {
            int n = 0;
            for (LoraLayer l : loraLayers(model).values()) if (l.isMerged() && l.unmerge()) n++;
            return n;
        });
    }

    /** Switches every LoRA layer's adapter on or off. */
    public static void setAdaptersEnabled(Module model, boolean enabled) {
        AdapterLock.changing(model, () -> {
            loraLayers(model).values().forEach(l -> l.setAdapterEnabled(enabled));
            return null;
        });
    }

    /**
     * Switches every LoRA adapter of the model off until the returned scope closes, then back to
     * what it was, even when the block throws (PEFT's {@code with model.disable_adapter():}).
     * Merged adapters are unmerged while disabled and stay unmerged afterwards. Opening and
     * closing are each one change (see {@link AdapterLock}); forwards of other threads in between
     * see the adapters disabled.
     */
    public static AdapterScope disableAdapters(Module model) {
        return AdapterLock.changing(model, () -> {
            Map<LoraLayer, Boolean> before = new LinkedHashMap<>();
            loraLayers(model).values().forEach(l -> before.put(l, l.isAdapterEnabled()));
            before.keySet().forEach(l -> l.setAdapterEnabled(false));
            return new AdapterScope(model, before);
        });
    }

    /** Restores the adapters' enabled flags when closed; see {@link #disableAdapters}. Idempotent. */
    public static final class AdapterScope implements AutoCloseable {
        private final Module model;
        private final Map<LoraLayer, Boolean> before;
        private boolean closed;

        private AdapterScope(Module model, Map<LoraLayer, Boolean> before) {
            this.model = model;
            this.before = before;
        }

        @Override
        public void close() {
            AdapterLock.changing(model, () -> {
                if (closed) return null;
                closed = true;
                before.forEach((l, enabled) -> {
                    if (!l.isClosed()) l.setAdapterEnabled(enabled);
                });
                return null;
            });
        }
    }

    // ------------------------------------------------------------------ named adapters

    /**
     * Whether {@code name} can name an adapter: non-empty, without dots (PEFT's names are parts
     * of parameter names) and not {@link AdapterBank#BASE}. The rule every add and load checks;
     * a service can check a client's name with it before doing any work.
     */
    public static boolean isValidAdapterName(String name) {
        return name != null && !name.isEmpty() && !name.contains(".") && !name.equals(AdapterBank.BASE);
    }

    /** Every adapter name of the model's LoRA layers, in the order first seen. */
    public static List<String> adapterNames(Module model) {
        return AdapterLock.reading(model, () -> names(model));
    }

    /** {@link #adapterNames} for callers that hold the model's lock already. */
    private static List<String> names(Module model) {
        java.util.LinkedHashSet<String> names = new java.util.LinkedHashSet<>();
        loraLayers(model).values().forEach(l -> names.addAll(l.adapterNames()));
        return List.copyOf(names);
    }

    /** The adapters active in at least one LoRA layer, in the order first seen. */
    public static List<String> activeAdapters(Module model) {
        return AdapterLock.reading(model, () -> {
            java.util.LinkedHashSet<String> names = new java.util.LinkedHashSet<>();
            loraLayers(model).values().forEach(l -> names.addAll(l.activeAdapters()));
            return List.copyOf(names);
        });
    }

    /**
     * Makes {@code names} the active adapters of every LoRA layer (PEFT's {@code set_adapter}),
     * each layer taking those it holds; only their factors require gradients. No names: every
     * layer computes its base output only.
     *
     * @throws IllegalArgumentException when a name is no adapter of the model
     */
    public static void setAdapter(Module model, String... names) {
        AdapterLock.changing(model, () -> {
            requireKnown(model, names);
            for (LoraLayer l : loraLayers(model).values()) {
                l.setActiveAdapters(java.util.Arrays.stream(names).filter(l::hasAdapter).toArray(String[]::new));
            }
            return null;
        });
    }

    /**
     * Deletes adapter {@code name} from every LoRA layer holding it and frees its factors
     * (PEFT's {@code delete_adapter}). The layers stay LoRA layers, possibly with no adapter.
     *
     * @throws IllegalArgumentException when no layer holds it
     * @throws IllegalStateException when it is merged somewhere (unmerge first; nothing is deleted)
     */
    public static void deleteAdapter(Module model, String name) {
        AdapterLock.changing(model, () -> {
            requireKnown(model, new String[] {name});
            List<LoraLayer> holding = loraLayers(model).values().stream().filter(l -> l.hasAdapter(name)).toList();
            for (LoraLayer l : holding) {
                if (l.mergedAdapters().contains(name)) throw new IllegalStateException("adapter '" + name + "' is merged: unmerge before deleting it");
            }
            holding.forEach(l -> l.deleteAdapter(name));
            return null;
        });
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
        AdapterLock.changing(model, () -> {
            requireKnown(model, adapters);
            if (names(model).contains(newName)) throw new IllegalArgumentException("adapter '" + newName + "' already exists");
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
            } else {
                for (LoraLayer l : layers) WeightedAdapters.check(l, adapters, weights, type, svdRank); // all layers before any change
                for (LoraLayer l : layers) WeightedAdapters.combine(l, adapters, weights, newName, type, svdRank);
            }
            return null;
        });
    }

    /**
     * The model's output for a batch whose row i uses adapter {@code rowAdapters[i]}
     * ({@link AdapterBank#BASE} for the base model alone), PEFT's {@code adapter_names=}
     * argument. Linear layers compute every row in one fused call in inference (no gradients);
     * other layers run each adapter on its rows. Active adapters do not matter here. Safe from
     * many threads at once on a model in eval mode, also while other threads change its
     * adapters: the whole forward sees one adapter state (see {@link AdapterLock}).
     *
     * @throws IllegalArgumentException for a name that is no adapter of the model, or a
     *     count of names that differs from the batch size
     * @throws IllegalStateException when adapters are merged
     */
    public static Tensor forward(Module model, Tensor input, String... rowAdapters) {
        Objects.requireNonNull(input, "input");
        return withRowAdapters(model, input.dim() == 0 ? 0 : input.size(0), () -> model.forward(input), rowAdapters);
    }

    /**
     * Runs {@code body} (forwards of {@code model} on a batch of {@code batchSize} rows, with
     * whatever extra inputs the model takes, such as a BERT attention mask) so that row i of
     * every LoRA layer's input uses adapter {@code rowAdapters[i]}, as {@link #forward} does.
     * Row i is dimension 0 of each layer's input ([batch, seq, hidden] for a transformer).
     *
     * @throws IllegalArgumentException for an unknown adapter name or a count of names that
     *     differs from {@code batchSize}
     */
    public static <T> T withRowAdapters(Module model, long batchSize, java.util.function.Supplier<T> body, String... rowAdapters) {
        Objects.requireNonNull(body, "body");
        String[] rows = rowAdapters.clone();
        for (int i = 0; i < rows.length; i++) Objects.requireNonNull(rows[i], "rowAdapters[" + i + "]");
        if (batchSize != rows.length) {
            throw new IllegalArgumentException(rows.length + " adapter names for a batch of " + batchSize + " rows");
        }
        return AdapterLock.reading(model, () -> {
            List<String> have = names(model);
            java.util.Set<String> known = new java.util.HashSet<>(have);
            for (String row : rows) {
                if (!row.equals(AdapterBank.BASE) && !known.contains(row)) {
                    throw new IllegalArgumentException("no adapter named '" + row + "' (have " + have + ", or '" + AdapterBank.BASE + "' for none)");
                }
            }
            return LoraLayer.withRowAdapters(rows, body);
        });
    }

    /**
     * The model's output with its active adapters ({@code model.forward(input)}, PEFT's
     * {@code model(x)}), the whole forward under the model's read lock, so it sees one adapter
     * state in every layer while other threads may change adapters (see {@link AdapterLock}).
     * Safe from many threads at once on a model in eval mode.
     */
    public static Tensor forward(Module model, Tensor input) {
        Objects.requireNonNull(input, "input");
        return AdapterLock.reading(model, () -> model.forward(input));
    }

    private static void requireKnown(Module model, String[] names) {
        requireKnown(model, java.util.Arrays.asList(names));
    }

    private static void requireKnown(Module model, List<String> names) {
        Objects.requireNonNull(names, "adapter names");
        List<String> have = names(model);
        for (String n : names) {
            Objects.requireNonNull(n, "adapter name");
            if (!have.contains(n)) throw new IllegalArgumentException("no adapter named '" + n + "' (have " + have + ")");
        }
    }

    /**
     * Merges every LoRA layer and puts its base layer back in its place (PEFT's
     * {@code merge_and_unload}); the adapters are closed. Returns the model. With {@code safe},
     * every layer is checked first ({@link LoraLayer#checkMerge}): a non-finite merged weight
     * anywhere throws {@link IllegalStateException} with the model unchanged.
     */
    public static Module mergeAndUnload(Module model, boolean safe) {
        return AdapterLock.changing(model, () -> {
            Map<String, LoraLayer> layers = loraLayers(model);
            if (layers.containsKey("")) throw new IllegalArgumentException("the model itself is a LoRA layer: use its mergeAndUnload");
            requireOwnBase(model, layers.values());
            if (safe) layers.values().forEach(l -> l.checkMerge()); // every layer before any changes
            for (var e : layers.entrySet()) {
                String path = e.getKey();
                int dot = path.lastIndexOf('.');
                Module parent = dot < 0 ? model : model.module(path.substring(0, dot));
                parent.replaceChild(path.substring(dot + 1), e.getValue().mergeAndUnload(safe));
            }
            return model;
        });
    }
}
