package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.ArrayList;
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
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(wrapper, "wrapper");
        Objects.requireNonNull(config, "config");
        List<String> wrapped = new ArrayList<>();
        List<String> excluded = new ArrayList<>();
        for (var e : new LinkedHashMap<>(model.namedModules()).entrySet()) {
            String path = e.getKey();
            Module m = e.getValue();
            if (path.isEmpty() || !isWrappable(m) || !selected(path, m, config)) continue;
            if (config.excludeModules().stream().anyMatch(x -> nameMatches(path, x))) {
                excluded.add(path);
                continue;
            }
            int dot = path.lastIndexOf('.');
            Module parent = dot < 0 ? model : model.module(path.substring(0, dot));
            parent.replaceChild(path.substring(dot + 1), wrapper.wrap(m, config));
            wrapped.add(path);
        }
        boolean named = !config.targetModules().isEmpty() || config.targetRegex() != null;
        if (named && wrapped.isEmpty()) {
            throw new IllegalArgumentException("no module of the model matches target_modules " + config.targetModules()
                    + (config.targetRegex() != null ? " / regex " + config.targetRegex() : "") + "; modules are "
                    + model.namedModules().keySet());
        }
        markOnlyLoraAsTrainable(model, config.bias());
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

    /** The plain LoRA wrapper of a Linear, Embedding or Conv layer. */
    public static LoraLayer wrapper(Module m, LoraConfig config) {
        if (m instanceof Linear l) return new LoraLinear(l, config);
        if (m instanceof Embedding e) return new LoraEmbedding(e, config);
        if (m instanceof dev.lora4j.nn.Conv1d c) return new LoraConv1d(c, config);
        if (m instanceof dev.lora4j.nn.Conv2d c) return new LoraConv2d(c, config);
        if (m instanceof dev.lora4j.nn.Conv3d c) return new LoraConv3d(c, config);
        return new LoraConv((Conv) m, config);
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

    /** Merges every LoRA layer (see {@link LoraLayer#merge(boolean)}); returns how many merged now. */
    public static int merge(Module model, boolean safe) {
        int n = 0;
        for (LoraLayer l : loraLayers(model).values()) if (l.merge(safe)) n++;
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
