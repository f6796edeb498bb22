package dev.lora4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraConv;
import dev.lora4j.lora.LoraEmbedding;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Conv;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * PEFT's LoRA adapter folder, so that Java and Python users exchange adapters: an
 * {@code adapter_config.json} and an {@code adapter_model.safetensors} whose keys are
 * {@code base_model.model.<module path>.lora_A.weight} (r, in[, *k]) and {@code .lora_B.weight}
 * (out, r[, 1…]) for Linear and Conv layers, {@code .lora_embedding_A} (r, num_embeddings) and
 * {@code .lora_embedding_B} (dim, r) for Embedding layers. Scales are recomputed from the config:
 * α/r, α/√r with {@code use_rslora}, per module from {@code rank_pattern} / {@code alpha_pattern}.
 * With {@code use_dora} a Linear module also has {@code .lora_magnitude_vector} (out), PEFT's
 * saved name for DoRA's magnitude (in memory {@code lora_magnitude_vector.<adapter>.weight}).
 * {@code init_lora_weights} "pissa", "pissa_niter_n" and "olora" re-run that init on load, as
 * PEFT does (the base weight becomes the residual, then the file's factors are loaded).
 *
 * <p>Loading checks the whole folder against the model before changing anything, and reports
 * config fields it does not know or cannot honour instead of ignoring them silently; fields
 * that would change the adapter's meaning (modules_to_save, layers_to_transform, ...) are refused. Stateless
 * and thread-safe; {@link #load} changes the model (one thread, no concurrent forwards).
 */
public final class PeftAdapter {

    /** The file names of a PEFT adapter folder. */
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    static final String PREFIX = "base_model.model.";
    /** The key suffix of DoRA's magnitude in PEFT's files (its in-memory name ends in {@code .weight}). */
    static final String MAGNITUDE = ".lora_magnitude_vector";
    /** The key suffixes of an adapter's tensors in PEFT's files. */
    static final List<String> KEY_SUFFIXES = List.of(".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B", MAGNITUDE);

    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Fields lora4j reads and honours. */
    private static final Set<String> HONOURED = Set.of("peft_type", "r", "lora_alpha", "lora_dropout", "fan_in_fan_out",
            "use_rslora", "target_modules", "rank_pattern", "alpha_pattern", "bias", "init_lora_weights", "exclude_modules", "use_dora");
    /** Fields that only describe where the adapter came from or how it was trained. */
    private static final Set<String> DESCRIPTIVE = Set.of("base_model_name_or_path", "revision", "task_type", "inference_mode",
            "auto_mapping", "peft_version", "lora_bias", "runtime_config");
    /** Fields that change the adapter's meaning unless they hold their default (null, false, empty). */
    private static final Set<String> REFUSED_UNLESS_DEFAULT = Set.of("modules_to_save", "layers_to_transform",
            "layers_pattern", "layer_replication", "megatron_config", "megatron_core", "loftq_config", "trainable_token_indices",
            "eva_config", "corda_config", "target_parameters", "qalora_group_size", "use_qalora", "alora_invocation_tokens");

    private PeftAdapter() {}

    /**
     * Replaces the weights of the model's adapter {@code adapterName} in place with those of the
     * PEFT folder {@code dir} (PEFT's {@code hotswap_adapter}); see {@link PeftHotswap}.
     *
     * @throws IOException for a bad folder, a config incompatible with the loaded adapter, or
     *     tensors that do not fit it (nothing changes then)
     */
    public static void hotswap(Module model, Path dir, String adapterName) throws IOException {
        PeftHotswap.hotswap(model, dir, adapterName);
    }

    /** What {@link #load} did: the modules it wrapped, and the config fields it reported. */
    public record LoadReport(List<String> wrapped, List<String> unknownFields, List<String> ignoredFields, LoraConfig config) {}

    // ------------------------------------------------------------------ save

    /**
     * Writes the model's LoRA layers ({@link LoraLinear}, {@link LoraEmbedding},
     * {@link LoraConv} with groups 1) as a PEFT adapter folder. {@code config} supplies the
     * defaults; layers whose rank or α differ are written to rank_pattern / alpha_pattern.
     *
     * @throws IllegalArgumentException for LoRA layers PEFT cannot represent (merged, fused
     *     MergedLoraLinear, grouped conv, DyLoRA) or a model with no LoRA layer
     */
    public static void save(Module model, LoraConfig config, Path dir) throws IOException {
        List<String> active = Lora.activeAdapters(model);
        List<String> all = Lora.adapterNames(model);
        if (all.isEmpty()) throw new IllegalArgumentException("the model has no LoRA layer to save");
        save(model, active.isEmpty() ? all.get(0) : active.get(0), config, dir);
    }

    /**
     * Writes adapter {@code adapterName} as a PEFT adapter folder, with the config it was
     * created with (in its first layer) as the defaults. PEFT's files hold one adapter, under
     * names without the adapter's name.
     */
    public static void save(Module model, String adapterName, Path dir) throws IOException {
        LoraLayer first = Lora.loraLayers(model).values().stream().filter(l -> l.hasAdapter(adapterName)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no adapter named '" + adapterName + "' (have " + Lora.adapterNames(model) + ")"));
        save(model, adapterName, first.config(adapterName), dir);
    }

    /**
     * Writes adapter {@code adapterName} of the model's LoRA layers as a PEFT adapter folder;
     * {@code config} supplies the defaults, layers whose rank or α differ go to
     * rank_pattern / alpha_pattern.
     *
     * @throws IllegalArgumentException as {@link #save(Module, LoraConfig, Path)}, or when no
     *     layer holds the adapter
     */
    public static void save(Module model, String adapterName, LoraConfig config, Path dir) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(adapterName, "adapterName");
        Objects.requireNonNull(config, "config");
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Map<String, Integer> rankPattern = new TreeMap<>();
        Map<String, Double> alphaPattern = new TreeMap<>();
        List<String> targets = new ArrayList<>();
        try (TensorScope scope = TensorScope.open()) {
            for (var e : model.namedModules().entrySet()) {
                if (!(e.getValue() instanceof LoraLayer layer) || !layer.hasAdapter(adapterName)) continue;
                String path = e.getKey();
                String key = PREFIX + path;
                if (layer.mergedAdapters().contains(adapterName)) {
                    throw new IllegalArgumentException(path + ": adapter '" + adapterName + "' is merged: unmerge before saving it");
                }
                if (layer instanceof LoraLinear || layer instanceof LoraConv l && ((Conv) l.baseLayer()).groups() == 1) {
                    tensors.put(key + ".lora_A.weight", layer.loraA(adapterName));
                    tensors.put(key + ".lora_B.weight", layer.loraB(adapterName));
                    if (layer instanceof LoraLinear l && l.dora(adapterName) != null) {
                        tensors.put(key + MAGNITUDE, l.dora(adapterName).weight());
                    }
                } else if (layer instanceof LoraEmbedding) {
                    tensors.put(key + ".lora_embedding_A", layer.loraA(adapterName));
                    tensors.put(key + ".lora_embedding_B", layer.loraB(adapterName));
                } else {
                    throw new IllegalArgumentException(path + ": " + layer.getClass().getSimpleName()
                            + " has no PEFT LoRA equivalent (PEFT files hold Linear, Embedding and ungrouped Conv adapters)");
                }
                LoraConfig c = layer.config(adapterName);
                if (c.useRslora() != config.useRslora() || c.fanInFanOut() != config.fanInFanOut() || c.useDora() != config.useDora()) {
                    throw new IllegalArgumentException(path + ": use_rslora, fan_in_fan_out and use_dora must match the config for the whole adapter");
                }
                if (c.r() != config.r()) rankPattern.put(path, c.r());
                if (c.loraAlpha() != config.loraAlpha()) alphaPattern.put(path, c.loraAlpha());
                targets.add(path);
            }
            if (targets.isEmpty()) throw new IllegalArgumentException("no LoRA layer of the model holds adapter '" + adapterName + "'");
            Files.createDirectories(dir);
            Safetensors.write(dir.resolve(WEIGHTS), tensors, Map.of("format", "pt"));
        }
        ObjectNode json = JSON.createObjectNode();
        json.put("peft_type", "LORA");
        json.put("r", config.r());
        json.put("lora_alpha", config.loraAlpha());
        json.put("lora_dropout", config.loraDropout());
        json.put("fan_in_fan_out", config.fanInFanOut());
        json.put("use_rslora", config.useRslora());
        json.put("bias", config.bias().name().toLowerCase(java.util.Locale.ROOT));
        json.put("init_lora_weights", config.initLoraWeights());
        var t = json.putArray("target_modules");
        targets.forEach(t::add);
        ObjectNode rp = json.putObject("rank_pattern");
        rankPattern.forEach(rp::put);
        ObjectNode ap = json.putObject("alpha_pattern");
        alphaPattern.forEach(ap::put);
        json.putNull("modules_to_save");
        json.put("use_dora", config.useDora());
        json.put("inference_mode", true);
        json.putNull("task_type");
        json.putNull("base_model_name_or_path");
        Path tmp = Files.createTempFile(dir, CONFIG, ".tmp");
        try {
            Files.write(tmp, JSON.writeValueAsBytes(json));
            Files.move(tmp, dir.resolve(CONFIG), java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    // ------------------------------------------------------------------ load

    /**
     * Wraps the modules the adapter covers with LoRA layers (rank and α per module from the
     * config and its patterns, checked against the tensors' shapes) and loads the factors.
     * Nothing in the model changes when anything is wrong.
     *
     * @throws IOException for a missing or malformed folder, config or weights file, an
     *     unsupported setting, a key naming no suitable module, or a shape that does not fit
     */
    public static LoadReport load(Module model, Path dir) throws IOException {
        return load(model, dir, LoraLayer.DEFAULT_ADAPTER);
    }

    /**
     * Loads the folder as adapter {@code adapterName} (PEFT's {@code load_adapter}): modules
     * that are LoRA layers already get it as one more adapter, plain layers are wrapped. The
     * first adapter of a model becomes active and trainable as {@link Lora#wrap} makes it;
     * a further adapter is added inactive (see {@link Lora#setAdapter}). Nothing in the model
     * changes when anything is wrong.
     *
     * @throws IllegalArgumentException when the model has an adapter of that name already
     * @throws IOException as {@link #load(Module, Path)}
     */
    public static LoadReport load(Module model, Path dir, String adapterName) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(adapterName, "adapterName");
        List<String> before = Lora.adapterNames(model);
        if (before.contains(adapterName)) throw new IllegalArgumentException("adapter '" + adapterName + "' already exists: delete it first");
        Path configFile = dir.resolve(CONFIG);
        Path weightsFile = dir.resolve(WEIGHTS);
        if (!Files.isRegularFile(configFile)) throw new IOException(dir + " has no " + CONFIG);
        if (!Files.isRegularFile(weightsFile)) throw new IOException(dir + " has no " + WEIGHTS);
        JsonNode cfg;
        try {
            cfg = JSON.readTree(configFile.toFile());
        } catch (IOException e) {
            throw new IOException(configFile + ": bad JSON: " + e.getMessage(), e);
        }
        if (cfg == null || !cfg.isObject()) throw new IOException(configFile + " is not a JSON object");
        String type = text(cfg, "peft_type", "LORA");
        if (!type.equals("LORA")) throw new IOException(configFile + ": peft_type " + type + " is not LORA");
        List<String> unknown = new ArrayList<>();
        List<String> ignored = new ArrayList<>();
        for (Iterator<String> it = cfg.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            JsonNode v = cfg.get(f);
            if (HONOURED.contains(f)) continue;
            if (DESCRIPTIVE.contains(f)) {
                ignored.add(f);
            } else if (REFUSED_UNLESS_DEFAULT.contains(f)) {
                if (!isDefault(v)) throw new IOException(configFile + ": " + f + " = " + v + " is not supported by lora4j");
            } else {
                unknown.add(f);
            }
        }
        LoraConfig base = config(configFile, cfg);
        Map<String, JsonNode> rankPattern = fields(cfg.get("rank_pattern"));
        Map<String, JsonNode> alphaPattern = fields(cfg.get("alpha_pattern"));

        try (Safetensors.Contents contents = Safetensors.read(weightsFile)) {
            // Group the tensors by module and check every one before touching the model.
            Map<String, Map<String, Tensor>> byModule = new LinkedHashMap<>();
            for (var e : contents.tensors().entrySet()) {
                String k = e.getKey();
                if (!k.startsWith(PREFIX)) throw new IOException(weightsFile + ": key '" + k + "' does not start with " + PREFIX);
                String rest = k.substring(PREFIX.length());
                String suffix = KEY_SUFFIXES.stream().filter(rest::endsWith).findFirst()
                        .orElseThrow(() -> new IOException(weightsFile + ": key '" + k + "' is not a LoRA factor lora4j knows"));
                String path = rest.substring(0, rest.length() - suffix.length());
                byModule.computeIfAbsent(path, p -> new LinkedHashMap<>()).put(suffix, e.getValue());
            }
            List<Plan> plans = new ArrayList<>();
            for (var e : byModule.entrySet()) plans.add(plan(model, weightsFile, e.getKey(), e.getValue(), base, rankPattern, alphaPattern));
            // Apply.
            List<String> wrapped = new ArrayList<>();
            for (Plan p : plans) {
                LoraLayer layer;
                if (p.existing != null) {
                    layer = p.existing;
                    layer.addAdapter(adapterName, p.config);
                } else {
                    int dot = p.path.lastIndexOf('.');
                    Module parent = dot < 0 ? model : model.module(p.path.substring(0, dot));
                    layer = Lora.wrapper(p.module, adapterName, p.config);
                    parent.replaceChild(p.path.substring(dot + 1), layer);
                    if (!before.isEmpty()) layer.setActiveAdapters(); // as PEFT: the model's active adapters stay the active ones
                }
                try (var ng = Torch.noGrad()) {
                    layer.loraA(adapterName).copy_(p.a);
                    layer.loraB(adapterName).copy_(p.b);
                    if (p.magnitude != null) ((LoraLinear) layer).dora(adapterName).weight().copy_(p.magnitude);
                }
                wrapped.add(p.path);
            }
            if (before.isEmpty()) Lora.markOnlyLoraAsTrainable(model, base.bias());
            return new LoadReport(List.copyOf(wrapped), List.copyOf(unknown), List.copyOf(ignored), base);
        }
    }

    /** One module to load: its base layer, the LoRA layer already around it (or null), the factors. */
    private record Plan(String path, Module module, LoraLayer existing, LoraConfig config, Tensor a, Tensor b, Tensor magnitude) {}

    private static Plan plan(Module model, Path file, String path, Map<String, Tensor> factors, LoraConfig base,
                             Map<String, JsonNode> rankPattern, Map<String, JsonNode> alphaPattern) throws IOException {
        Module m;
        try {
            m = model.module(path);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": the model has no module '" + path + "'");
        }
        LoraLayer existing = null;
        if (m instanceof LoraLayer l) {
            if (!(l instanceof LoraLinear || l instanceof LoraEmbedding || l instanceof LoraConv)) {
                throw new IOException(file + ": module '" + path + "' is a " + l.getClass().getSimpleName() + ", which holds one adapter only");
            }
            if (!l.adapterNames().isEmpty() && l.config(l.adapterNames().get(0)).fanInFanOut() != base.fanInFanOut()) {
                throw new IOException(file + ": module '" + path + "' holds adapters with fan_in_fan_out="
                        + !base.fanInFanOut() + ", the file's config says " + base.fanInFanOut());
            }
            existing = l;
            m = l.baseLayer();
        }
        boolean embedding = factors.containsKey(".lora_embedding_A") || factors.containsKey(".lora_embedding_B");
        Tensor a = factors.get(embedding ? ".lora_embedding_A" : ".lora_A.weight");
        Tensor b = factors.get(embedding ? ".lora_embedding_B" : ".lora_B.weight");
        Tensor magnitude = factors.get(MAGNITUDE);
        if (a == null || b == null || factors.size() != (magnitude == null ? 2 : 3)) {
            throw new IOException(file + ": module '" + path + "' needs exactly one A and one B factor, got " + factors.keySet());
        }
        if (base.useDora() != (magnitude != null)) {
            throw new IOException(file + ": module '" + path + (base.useDora() ? "' has no " + MAGNITUDE.substring(1) + " but the config says use_dora"
                    : "' has a " + MAGNITUDE.substring(1) + " but the config does not say use_dora"));
        }
        if (magnitude != null && !(m instanceof Linear)) {
            throw new IOException(file + ": module '" + path + "' is a " + m.getClass().getSimpleName() + "; lora4j supports DoRA on Linear layers only");
        }
        if (embedding != (m instanceof Embedding)) {
            throw new IOException(file + ": module '" + path + "' is a " + m.getClass().getSimpleName()
                    + " but the file holds " + (embedding ? "embedding" : "linear/conv") + " factors");
        }
        if (!(m instanceof Linear || m instanceof Embedding || m instanceof Conv)) {
            throw new IOException(file + ": module '" + path + "' is a " + m.getClass().getSimpleName() + ", not Linear, Embedding or Conv");
        }
        int r = (int) a.size(0);
        int expectedR = pattern(rankPattern, path).map(JsonNode::asInt).orElse(base.r());
        if (r != expectedR) {
            throw new IOException(file + ": module '" + path + "' has rank " + r + " but the config says " + expectedR);
        }
        double alpha = pattern(alphaPattern, path).map(JsonNode::asDouble).orElse(base.loraAlpha());
        LoraConfig c = base.withR(r).withAlpha(alpha);
        long[] wantA;
        long[] wantB;
        if (m instanceof Embedding e) {
            wantA = new long[] {r, e.numEmbeddings()};
            wantB = new long[] {e.embeddingDim(), r};
        } else if (m instanceof Conv conv) {
            if (conv.groups() != 1) throw new IOException(file + ": module '" + path + "' is a grouped conv, which PEFT files do not hold");
            wantA = new long[conv.spatialDims() + 2];
            wantA[0] = r;
            wantA[1] = conv.inChannels();
            System.arraycopy(conv.kernelSize(), 0, wantA, 2, conv.spatialDims());
            wantB = new long[conv.spatialDims() + 2];
            Arrays.fill(wantB, 1);
            wantB[0] = conv.outChannels();
            wantB[1] = r;
        } else {
            Tensor w = m.parameter("weight");
            long in = base.fanInFanOut() ? w.size(0) : w.size(1);
            long out = base.fanInFanOut() ? w.size(1) : w.size(0);
            wantA = new long[] {r, in};
            wantB = new long[] {out, r};
        }
        if (!Arrays.equals(a.shape(), wantA) || !Arrays.equals(b.shape(), wantB)) {
            throw new IOException(file + ": module '" + path + "' needs A " + Arrays.toString(wantA) + " and B "
                    + Arrays.toString(wantB) + ", the file has " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
        boolean svdInit = c.init() == LoraConfig.Init.PISSA || c.init() == LoraConfig.Init.OLORA;
        if (svdInit && (!(m instanceof Linear) || r > Math.min(wantA[1], wantB[0]))) {
            throw new IOException(file + ": module '" + path + "': init_lora_weights " + c.initLoraWeights()
                    + " needs a Linear layer with r <= min(in, out), got a " + m.getClass().getSimpleName() + " and r = " + r);
        }
        if (magnitude != null && !Arrays.equals(magnitude.shape(), new long[] {wantB[0]})) {
            throw new IOException(file + ": module '" + path + "' needs a " + MAGNITUDE.substring(1) + " of shape [" + wantB[0] + "], the file has "
                    + Arrays.toString(magnitude.shape()));
        }
        return new Plan(path, m, existing, c, a, b, magnitude);
    }

    /** PEFT's pattern lookup: a key matches a module path equal to it or ending in "." + it (or as a regex). */
    static java.util.Optional<JsonNode> pattern(Map<String, JsonNode> patterns, String path) {
        for (var e : patterns.entrySet()) {
            String key = e.getKey();
            if (path.equals(key) || path.endsWith("." + key) || matchesRegex(key, path)) return java.util.Optional.of(e.getValue());
        }
        return java.util.Optional.empty();
    }

    private static boolean matchesRegex(String key, String path) {
        try {
            return Pattern.matches(".*\\." + key, path) || Pattern.matches(key, path);
        } catch (java.util.regex.PatternSyntaxException e) {
            return false;
        }
    }

    static LoraConfig config(Path file, JsonNode cfg) throws IOException {
        int r = cfg.path("r").asInt(8);
        double alpha = cfg.path("lora_alpha").asDouble(8);
        double dropout = cfg.path("lora_dropout").asDouble(0);
        boolean fanInFanOut = cfg.path("fan_in_fan_out").asBoolean(false);
        boolean rslora = cfg.path("use_rslora").asBoolean(false);
        String bias = text(cfg, "bias", "none");
        LoraConfig.Bias b = switch (bias) {
            case "none" -> LoraConfig.Bias.NONE;
            case "all" -> LoraConfig.Bias.ALL;
            case "lora_only" -> LoraConfig.Bias.LORA_ONLY;
            default -> throw new IOException(file + ": unknown bias '" + bias + "'");
        };
        boolean dora = cfg.path("use_dora").asBoolean(false);
        List<String> targets = new ArrayList<>();
        JsonNode t = cfg.get("target_modules");
        if (t != null && t.isArray()) t.forEach(n -> targets.add(n.asText()));
        else if (t != null && t.isTextual()) targets.add(t.asText());
        try {
            return new LoraConfig(r, alpha, dropout, fanInFanOut, rslora, LoraConfig.Init.DEFAULT, targets, null, List.of(), b)
                    .withInitLoraWeights(cfg.path("init_lora_weights").asText("true")).withUseDora(dora);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    private static String text(JsonNode cfg, String field, String def) {
        JsonNode v = cfg.get(field);
        return v == null || v.isNull() ? def : v.asText();
    }

    static Map<String, JsonNode> fields(JsonNode obj) {
        Map<String, JsonNode> out = new LinkedHashMap<>();
        if (obj != null && obj.isObject()) obj.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue()));
        return out;
    }

    private static boolean isDefault(JsonNode v) {
        return v == null || v.isNull() || v.isBoolean() && !v.asBoolean() || (v.isArray() || v.isObject()) && v.isEmpty()
                || v.isNumber() && v.asDouble() == 0;
    }
}
