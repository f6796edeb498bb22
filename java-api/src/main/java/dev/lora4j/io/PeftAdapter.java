package dev.lora4j.io;

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
import dev.lora4j.nn.HfConv1D;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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
 * <p>A folder is untrusted input. Loading reads the config strictly (PEFT's JSON types, finite
 * values, refused by the field's name otherwise; see {@link PeftConfigJson}), matches
 * {@code rank_pattern} / {@code alpha_pattern} keys as PEFT does, as regular expressions on
 * module-name suffixes, under a bounded budget ({@link BoundedRegex}), refuses non-finite
 * factors, keys with empty path segments and keys that reach inside a LoRA layer, plans every
 * module before changing anything and undoes what it applied if anything fails: on any refusal
 * the model is exactly as before and the adapter name is free. Config fields it does not know
 * are reported, fields that would change the adapter's meaning (LoftQ, layers_to_transform, ...)
 * are refused. {@code modules_to_save} is honoured: those modules' parameters are saved whole
 * and loaded in place (PEFT keeps the original module beside its trained copy; lora4j replaces
 * it), trainable only with {@code isTrainable}. Saving writes PEFT's JSON types and values only; a save and a load of one
 * folder running at once give the old adapter or the new one, never a mix
 * ({@link PairedFiles}).
 *
 * <p>Stateless and thread-safe; {@link #load} changes the model as one adapter change: it waits for
 * running forwards of the model and forwards see the model before it or after it
 * ({@link dev.lora4j.lora.AdapterLock}).
 */
public final class PeftAdapter {

    /** The file names of a PEFT adapter folder. */
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    static final String PREFIX = "base_model.model.";
    /** The key suffix of DoRA's magnitude in PEFT's files (its in-memory name ends in {@code .weight}). */
    static final String MAGNITUDE = ".lora_magnitude_vector";
    /** The key suffixes of an adapter's tensors in PEFT's files. */
    private static final List<String> KEY_SUFFIXES = List.of(".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B", MAGNITUDE);

    private PeftAdapter() {}

    /**
     * Replaces the weights of the model's adapter {@code adapterName} in place with those of the
     * PEFT folder {@code dir} (PEFT's {@code hotswap_adapter}); see {@link PeftHotswap}. One
     * adapter change: it waits for running forwards of the model ({@link dev.lora4j.lora.AdapterLock}).
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
     * Writes the model's LoRA layers ({@link LoraLinear} on Linear, GPT-2's Conv1D or another
     * 2-d weight, {@link LoraEmbedding}, {@link LoraConv} with groups 1) as a PEFT adapter folder. {@code config} supplies the
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
        save(model, adapterName, config, List.of(), dir);
    }

    /**
     * As {@link #save(Module, String, LoraConfig, Path)}, plus PEFT's {@code modules_to_save}:
     * every parameter of the modules those names select (a module path equal to a name or
     * ending in "." + it, e.g. "classifier") is written whole under
     * {@code base_model.model.<path>.<parameter>}, and the names go to the config.
     *
     * @throws IllegalArgumentException as the other overloads, or for a name that selects no module
     */
    public static void save(Module model, String adapterName, LoraConfig config, List<String> modulesToSave, Path dir)
            throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(modulesToSave, "modulesToSave");
        Objects.requireNonNull(adapterName, "adapterName");
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(dir, "dir");
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Map<String, LoraConfig> configs = new LinkedHashMap<>();
        boolean fanInFanOut = false;
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
                            + " has no PEFT LoRA equivalent (PEFT files hold Linear, Conv1D, Embedding and ungrouped Conv adapters)");
                }
                LoraConfig c = layer.config(adapterName);
                if (c.useRslora() != config.useRslora() || c.useDora() != config.useDora()) {
                    throw new IllegalArgumentException(path + ": use_rslora and use_dora must match the config for the whole adapter");
                }
                // fan_in_fan_out is a property of each base layer (PEFT corrects it per module on loading);
                // the file says true when a (in, out) base such as GPT-2's Conv1D is among the targets, as PEFT's GPT-2 configs do.
                if (layer instanceof LoraLinear && c.fanInFanOut()) fanInFanOut = true;
                configs.put(path, c);
            }
            if (configs.isEmpty()) throw new IllegalArgumentException("no LoRA layer of the model holds adapter '" + adapterName + "'");
            List<String> targets = List.copyOf(configs.keySet());
            Map<String, Integer> rankPattern = new TreeMap<>();
            Map<String, Double> alphaPattern = new TreeMap<>();
            for (var e : configs.entrySet()) {
                LoraConfig c = e.getValue();
                if (c.r() != config.r()) rankPattern.put(patternKey(e.getKey(), targets), c.r());
                if (c.loraAlpha() != config.loraAlpha()) alphaPattern.put(patternKey(e.getKey(), targets), c.loraAlpha());
            }
            for (String name : modulesToSave) {
                List<String> paths = modulesToSavePaths(model, name);
                if (paths.isEmpty()) throw new IllegalArgumentException("modules_to_save: no module of the model is named '" + name + "'");
                for (String path : paths) {
                    model.module(path).namedParameters().forEach((k, t) -> tensors.put(PREFIX + path + "." + k, t.detach()));
                }
            }
            byte[] json = PeftConfigJson.write(config, fanInFanOut, targets, rankPattern, alphaPattern, modulesToSave);
            PairedFiles.write(dir, CONFIG, json, WEIGHTS, tensors);
        }
    }

    /**
     * Writes a PEFT adapter folder from the bytes of its {@code adapter_config.json} and its
     * tensors (PEFT's keys), as {@link #save} writes one: readers see the old folder or the new
     * one, whole ({@link PairedFiles}). For callers that add fields of their own to the config
     * (PEFT reports or ignores fields it does not know); the config must be one {@link #load}
     * accepts.
     *
     * @throws IOException when the config is not a LoRA config lora4j reads, or writing fails
     */
    public static void write(Path dir, byte[] configJson, Map<String, Tensor> tensors) throws IOException {
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(configJson, "configJson");
        Objects.requireNonNull(tensors, "tensors");
        String where = dir.resolve(CONFIG).toString();
        PeftConfigJson.parse(where, configJson, new BoundedRegex(where, BoundedRegex.DEFAULT_BUDGET));
        PairedFiles.write(dir, CONFIG, configJson.clone(), WEIGHTS, tensors);
    }

    /**
     * The rank_pattern / alpha_pattern key that PEFT's matcher ({@code (.*\.)?(key)$}) applies to
     * {@code path} only: the path itself, unless it would also match another target (a path
     * ending in "." + it, or one its dots match as wildcards); then the path anchored and escaped.
     */
    static String patternKey(String path, List<String> targets) {
        Pattern plain = Pattern.compile("(.*\\.)?(" + path + ")");
        boolean ambiguous = targets.stream().anyMatch(t -> !t.equals(path) && plain.matcher(t).matches());
        return ambiguous ? "^" + path.replaceAll("([^A-Za-z0-9_])", "\\\\$1") : path;
    }

    // ------------------------------------------------------------------ load

    /**
     * Loads the folder as adapter {@value LoraLayer#DEFAULT_ADAPTER}, frozen, as
     * {@link #load(Module, Path, String, boolean)} with {@code isTrainable} false.
     *
     * @throws IOException for a missing or malformed folder, config or weights file, an
     *     unsupported setting, a key naming no suitable module, or a shape that does not fit
     */
    public static LoadReport load(Module model, Path dir) throws IOException {
        return load(model, dir, LoraLayer.DEFAULT_ADAPTER, false);
    }

    /** Loads the folder as adapter {@code adapterName}, frozen: {@link #load(Module, Path, String, boolean)} with {@code isTrainable} false. */
    public static LoadReport load(Module model, Path dir, String adapterName) throws IOException {
        return load(model, dir, adapterName, false);
    }

    /**
     * Loads the folder as adapter {@code adapterName} (PEFT's {@code from_pretrained} /
     * {@code load_adapter}): modules that are LoRA layers already get it as one more adapter,
     * plain layers are wrapped (Linear, GPT-2's {@link dev.lora4j.nn.HfConv1D}, Embedding, Conv).
     * The first adapter of a model becomes active; a further adapter is added inactive (see
     * {@link Lora#setAdapter}). As PEFT, the adapter is frozen and the model put in eval mode
     * unless {@code isTrainable}; then the first adapter trains as {@link Lora#wrap} makes it.
     * All or nothing: when anything is refused, the model is exactly as before.
     *
     * @throws IllegalArgumentException when the model has an adapter of that name already
     * @throws IOException for a missing or malformed folder, config or weights file, an
     *     unsupported or ill-typed setting, a key naming no suitable module (or one inside a
     *     LoRA layer, or one the config's {@code target_modules} / {@code exclude_modules} does
     *     not select, as PEFT would not load it), a LoRA factor under a {@code modules_to_save}
     *     module, a file without any LoRA factor, a shape that does not fit or a factor that is
     *     not finite
     */
    public static LoadReport load(Module model, Path dir, String adapterName, boolean isTrainable) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(adapterName, "adapterName");
        // One change of the model's adapters: forwards of other threads see it whole or not at all.
        return dev.lora4j.lora.AdapterLock.changing(model, () -> loadLocked(model, dir, adapterName, isTrainable, null).report());
    }

    /**
     * What {@link #loadShared} did: the load's report, the config file's bytes (the very ones the
     * load used, for fields of the caller's own), and the {@code modules_to_save} tensors, not
     * written into the model, by parameter path ({@code classifier.weight}). The caller owns the
     * tensors: close them (or {@link #close()} this) when done.
     */
    public record SharedLoad(LoadReport report, byte[] configJson, Map<String, Tensor> modulesToSave) implements AutoCloseable {
        @Override
        public void close() {
            modulesToSave.values().forEach(Tensor::close);
        }
    }

    /**
     * Loads the folder as adapter {@code adapterName}, frozen, into a model whose base is shared
     * by other adapters in use at the same time (many tenants over one base, mixed batches,
     * {@link dev.lora4j.lora.AdapterPool}): only the LoRA factors go into the model. What would
     * change the shared base for every other adapter is refused before anything changes:
     * {@code init_lora_weights} "pissa", "pissa_niter_n" and "olora", which rewrite the base
     * weight on load. {@code modules_to_save} (a tenant's own classifier head) are not written into
     * the model: their tensors are returned, keyed by the path after {@code base_model.model.}
     * ({@code classifier.weight}); they need not name a module of {@code model}, and the caller
     * checks their shapes. With {@code rank} > 0 every module's factors are cut to their first
     * {@code rank} ranks, A[:rank] and B[:, :rank], α kept, so the scale is α/rank (α/√rank with
     * rsLoRA): DyLoRA's adapter at rank {@code rank}; 0 loads the factors as saved. Otherwise as
     * {@link #load(Module, Path, String)}: all or nothing, one adapter change.
     *
     * @throws IllegalArgumentException for a name the model holds already, or a negative rank
     * @throws IOException as {@link #load(Module, Path, String)}, for a base-changing init, for a
     *     rank above a module's r, or for a rank asked of a DoRA adapter
     */
    public static SharedLoad loadShared(Module model, Path dir, String adapterName, int rank) throws IOException {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(adapterName, "adapterName");
        if (rank < 0) throw new IllegalArgumentException("rank must be >= 0 (0: as saved), got " + rank);
        return dev.lora4j.lora.AdapterLock.changing(model, () -> loadLocked(model, dir, adapterName, false, new Shared(rank)));
    }

    /** The options of a shared-base load: the rank to cut to (0: none). */
    private record Shared(int rank) {}

    private static SharedLoad loadLocked(Module model, Path dir, String adapterName, boolean isTrainable, Shared shared)
            throws IOException {
        List<String> before = Lora.adapterNames(model);
        if (before.contains(adapterName)) throw new IllegalArgumentException("adapter '" + adapterName + "' already exists: delete it first");
        Path configFile = dir.resolve(CONFIG);
        Path weightsFile = dir.resolve(WEIGHTS);
        Map<String, Tensor> detached = new LinkedHashMap<>();
        List<Tensor> cuts = new ArrayList<>();
        try (PairedFiles.Snapshot folder = PairedFiles.read(dir, CONFIG, WEIGHTS)) {
            BoundedRegex regex = new BoundedRegex(configFile.toString(), BoundedRegex.DEFAULT_BUDGET);
            PeftConfigJson.Parsed parsed = PeftConfigJson.parse(configFile.toString(), folder.config(), regex);
            if (shared != null) SharedBase.check(configFile, parsed.config(), shared.rank());
            Map<String, Tensor> factors = new LinkedHashMap<>(folder.weights().tensors());
            Map<Tensor, Tensor> wholeModules = shared == null ? wholeModules(model, weightsFile, parsed.modulesToSave(), factors)
                    : SharedBase.detach(weightsFile, parsed.modulesToSave(), factors, detached);
            Map<String, Map<String, Tensor>> byModule = byModule(weightsFile, factors);
            List<Plan> plans = new ArrayList<>();
            Map<Module, String> seen = new java.util.IdentityHashMap<>();
            for (var e : byModule.entrySet()) {
                Plan p = plan(model, weightsFile, e.getKey(), e.getValue(), parsed, regex);
                requireSelected(weightsFile, e.getKey(), parsed, regex);
                if (shared != null && shared.rank() > 0) p = cut(weightsFile, p, shared.rank(), cuts);
                String other = seen.put(p.module, p.path);
                if (other != null) throw new IOException(weightsFile + ": modules '" + other + "' and '" + p.path + "' are the same layer");
                plans.add(p);
            }
            if (plans.isEmpty()) {
                throw new IOException(weightsFile + ": holds no LoRA factor (no key ending in .lora_A.weight, .lora_B.weight,"
                        + " .lora_embedding_A or .lora_embedding_B): there is no adapter to load");
            }
            List<String> wrapped = apply(model, adapterName, plans, wholeModules, before.isEmpty(), isTrainable, parsed.config());
            LoadReport report = new LoadReport(wrapped, parsed.unknownFields(), parsed.ignoredFields(), parsed.config());
            SharedLoad out = new SharedLoad(report, folder.config().clone(), java.util.Collections.unmodifiableMap(detached));
            detached = null; // handed over
            return out;
        } finally {
            cuts.forEach(Tensor::close);
            if (detached != null) detached.values().forEach(Tensor::close);
        }
    }

    /**
     * Refuses factors of a module the config does not select: PEFT creates LoRA layers for the
     * modules {@code target_modules} selects and {@code exclude_modules} does not, and never loads
     * factors into others, so such a file would load into lora4j what it does not into PEFT.
     */
    private static void requireSelected(Path file, String path, PeftConfigJson.Parsed parsed, BoundedRegex regex) throws IOException {
        PeftConfigJson.Selection t = parsed.targets();
        if (!t.isEmpty() && !t.names().equals(List.of("all-linear")) && !t.selects(regex, path)) {
            throw new IOException(file + ": module '" + path + "' has LoRA factors, but the config's target_modules " + t
                    + " does not select it (PEFT would not load them)");
        }
        PeftConfigJson.Selection x = parsed.excluded();
        if (!x.isEmpty() && x.selects(regex, path)) {
            throw new IOException(file + ": module '" + path + "' has LoRA factors, but the config's exclude_modules " + x
                    + " excludes it (PEFT would not load them)");
        }
    }

    /** Whether {@code path} (a key after PEFT's prefix) names a LoRA factor or DoRA magnitude. */
    static boolean isLoraFactor(String path) {
        return KEY_SUFFIXES.stream().anyMatch(path::endsWith);
    }

    /** A LoRA factor found under a {@code modules_to_save} module: refused, a module is saved whole or adapted. */
    static IOException factorInSavedModule(Path file, String key, String module) {
        return new IOException(file + ": '" + key + "' is a LoRA factor inside the modules_to_save module '" + module
                + "': a module is either saved whole or adapted, not both");
    }

    /** {@code p} with its factors cut to their first {@code rank} ranks; the views go to {@code cuts}, which the caller frees. */
    private static Plan cut(Path file, Plan p, int rank, List<Tensor> cuts) throws IOException {
        if (rank > p.config.r()) {
            throw new IOException(file + ": module '" + p.path + "' has rank " + p.config.r() + ", cannot be cut to rank " + rank);
        }
        Tensor a = p.a.narrow(0, 0, rank);
        cuts.add(a);
        Tensor b = p.b.narrow(1, 0, rank);
        cuts.add(b);
        return new Plan(p.path, p.module, p.existing, p.config.withR(rank), a, b, p.magnitude);
    }

    /**
     * Takes the tensors of the {@code modules_to_save} modules out of {@code tensors} and pairs
     * each with the model parameter it replaces, checking names, shapes, dtypes and values.
     */
    private static Map<Tensor, Tensor> wholeModules(Module model, Path file, List<String> modulesToSave, Map<String, Tensor> tensors)
            throws IOException {
        List<String> savedPaths = new ArrayList<>();
        for (String name : modulesToSave) {
            List<String> paths = modulesToSavePaths(model, name);
            if (paths.isEmpty()) throw new IOException(file + ": modules_to_save names '" + name + "', no module of the model");
            savedPaths.addAll(paths);
        }
        Map<Tensor, Tensor> whole = new java.util.IdentityHashMap<>();
        for (var it = tensors.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            String k = e.getKey();
            if (!k.startsWith(PREFIX)) continue; // refused by byModule
            String rest = k.substring(PREFIX.length());
            String saved = savedPaths.stream().filter(p -> rest.startsWith(p + ".")).findFirst().orElse(null);
            if (saved == null) continue;
            if (isLoraFactor(rest)) throw factorInSavedModule(file, k, saved);
            Tensor target = model.module(saved).namedParameters().get(rest.substring(saved.length() + 1));
            Tensor value = e.getValue();
            if (target == null || !Arrays.equals(target.shape(), value.shape())) {
                throw new IOException(file + ": modules_to_save tensor '" + k + "' "
                        + (target == null ? "names no parameter of module '" + saved + "'"
                                : "has shape " + Arrays.toString(value.shape()) + ", the model's is " + Arrays.toString(target.shape())));
            }
            if (target.dtype() != value.dtype()) throw new IOException(file + ": '" + k + "' holds " + value.dtype() + ", the model's is " + target.dtype());
            if (value.dtype().isFloatingPoint() && !value.allFinite()) throw new IOException(file + ": '" + k + "' holds NaN or infinite values");
            if (whole.put(target, value) != null) throw new IOException(file + ": '" + k + "' names a parameter twice");
            it.remove();
        }
        return whole;
    }

    /** Paths of the modules a modules_to_save name selects (equal to it or ending in "." + it). */
    private static List<String> modulesToSavePaths(Module model, String name) {
        List<String> out = new ArrayList<>();
        for (String path : model.namedModules().keySet()) {
            if (!path.isEmpty() && (path.equals(name) || path.endsWith("." + name))) out.add(path);
        }
        return out;
    }

    /** The file's factors by module path, each key checked: PEFT's prefix and suffixes, no empty path segment, finite values. */
    static Map<String, Map<String, Tensor>> byModule(Path file, Map<String, Tensor> tensors) throws IOException {
        Map<String, Map<String, Tensor>> byModule = new LinkedHashMap<>();
        for (var e : tensors.entrySet()) {
            String k = e.getKey();
            if (!k.startsWith(PREFIX)) throw new IOException(file + ": key '" + k + "' does not start with " + PREFIX);
            String rest = k.substring(PREFIX.length());
            String suffix = KEY_SUFFIXES.stream().filter(rest::endsWith).findFirst()
                    .orElseThrow(() -> new IOException(file + ": key '" + k + "' is not a LoRA factor lora4j knows"));
            String path = rest.substring(0, rest.length() - suffix.length());
            if (path.isEmpty() || Arrays.asList(path.split("\\.", -1)).contains("")) {
                throw new IOException(file + ": key '" + k + "' has an empty module name in its path '" + path + "'");
            }
            Tensor t = e.getValue();
            if (!t.dtype().isFloatingPoint()) throw new IOException(file + ": '" + k + "' holds " + t.dtype() + ", not floating-point values");
            if (!t.allFinite()) throw new IOException(file + ": '" + k + "' holds NaN or infinite values");
            byModule.computeIfAbsent(path, p -> new LinkedHashMap<>()).put(suffix, t);
        }
        return byModule;
    }

    /**
     * Applies every plan; when one fails, undoes the ones applied (adapters deleted, wrapped
     * layers put back, base weights that a PiSSA/OLoRA init changed restored) so the model is
     * as before, and rethrows.
     */
    private static List<String> apply(Module model, String adapterName, List<Plan> plans, Map<Tensor, Tensor> wholeModules,
                                      boolean first, boolean isTrainable, LoraConfig config) {
        List<Runnable> undo = new ArrayList<>();
        List<String> wrapped = new ArrayList<>();
        List<Tensor> olds = new ArrayList<>(); // modules_to_save values before the load, for the undo
        List<Tensor> saved = new ArrayList<>();
        try {
            List<LoraLayer> layers = new ArrayList<>();
            for (Plan p : plans) {
                if (changesBase(p.config)) { // the init rewrites the base weight: keep a copy to put back
                    Tensor w = p.module.parameter("weight");
                    Tensor copy;
                    try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
                        copy = w.detach().clone().keep();
                    }
                    saved.add(copy);
                    undo.add(() -> {
                        try (var ng = Torch.noGrad()) {
                            w.copy_(copy);
                        }
                    });
                }
                LoraLayer layer;
                if (p.existing != null) {
                    layer = p.existing;
                    layer.addAdapter(adapterName, p.config);
                    undo.add(() -> p.existing.deleteAdapter(adapterName));
                } else {
                    int dot = p.path.lastIndexOf('.');
                    Module parent = dot < 0 ? model : model.module(p.path.substring(0, dot));
                    String name = p.path.substring(dot + 1);
                    LoraLayer created = Lora.wrapper(p.module, adapterName, p.config);
                    undo.add(() -> {
                        parent.replaceChild(name, p.module);
                        created.unload();
                    });
                    parent.replaceChild(name, created);
                    if (!first) created.setActiveAdapters(); // as PEFT: the model's active adapters stay the active ones
                    layer = created;
                }
                try (var ng = Torch.noGrad()) {
                    layer.loraA(adapterName).copy_(p.a);
                    layer.loraB(adapterName).copy_(p.b);
                    if (p.magnitude != null) ((LoraLinear) layer).dora(adapterName).weight().copy_(p.magnitude);
                }
                layers.add(layer);
                wrapped.add(p.path);
            }
            // modules_to_save: replaced in place (PEFT keeps the original beside its trained copy), old values kept for the undo.
            try (var ng = Torch.noGrad()) {
                for (var e : wholeModules.entrySet()) {
                    Tensor target = e.getKey();
                    Tensor old = target.clone(); // no graph: grad mode is off here
                    olds.add(old);
                    undo.add(() -> {
                        try (var ng2 = Torch.noGrad()) {
                            target.copy_(old);
                        }
                    });
                    target.copy_(e.getValue());
                }
            }
            if (isTrainable) {
                if (first) Lora.markOnlyLoraAsTrainable(model, config.bias());
                wholeModules.keySet().forEach(t -> t.requiresGrad_(true));
            } else {
                if (first) model.requiresGrad_(false); // PEFT's inference mode: nothing trains
                layers.forEach(l -> l.freezeAdapter(adapterName));
                model.eval();
            }
            return List.copyOf(wrapped);
        } catch (RuntimeException | Error e) {
            for (int i = undo.size() - 1; i >= 0; i--) {
                try {
                    undo.get(i).run();
                } catch (RuntimeException | Error u) {
                    e.addSuppressed(u);
                }
            }
            throw e;
        } finally {
            olds.forEach(Tensor::close);
            saved.forEach(Tensor::close);
        }
    }

    /** Whether {@code c}'s init rewrites the base weight (PiSSA, OLoRA). */
    private static boolean changesBase(LoraConfig c) {
        return c.init() == LoraConfig.Init.PISSA || c.init() == LoraConfig.Init.OLORA;
    }

    /** One module to load: its base layer, the LoRA layer already around it (or null), the factors. */
    private record Plan(String path, Module module, LoraLayer existing, LoraConfig config, Tensor a, Tensor b, Tensor magnitude) {}

    private static Plan plan(Module model, Path file, String path, Map<String, Tensor> factors, PeftConfigJson.Parsed parsed,
                             BoundedRegex regex) throws IOException {
        Module m = model;
        String walked = "";
        for (String part : path.split("\\.")) {
            if (m instanceof LoraLayer) {
                throw new IOException(file + ": key path '" + path + "' reaches inside the LoRA layer '" + walked
                        + "' (a file names base layers, not the parts of adapters)");
            }
            if (!m.children().containsKey(part)) throw new IOException(file + ": the model has no module '" + path + "'");
            m = m.child(part);
            walked = walked.isEmpty() ? part : walked + "." + part;
        }
        LoraConfig base = parsed.config();
        LoraLayer existing = null;
        if (m instanceof LoraLayer l) {
            if (!(l instanceof LoraLinear || l instanceof LoraEmbedding || l instanceof LoraConv)) {
                throw new IOException(file + ": module '" + path + "' is a " + l.getClass().getSimpleName() + ", which holds one adapter only");
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
        if (!(m instanceof Linear || m instanceof HfConv1D || m instanceof Embedding || m instanceof Conv)) {
            throw new IOException(file + ": module '" + path + "' is a " + m.getClass().getSimpleName()
                    + ", not Linear, Conv1D, Embedding or Conv");
        }
        if (a.dim() < 2 || b.dim() < 2 || a.size(0) > Integer.MAX_VALUE) {
            throw new IOException(file + ": module '" + path + "' has factors of shapes " + Arrays.toString(a.shape()) + " and "
                    + Arrays.toString(b.shape()));
        }
        int r = (int) a.size(0);
        Integer patternR = pattern(regex, "rank_pattern", parsed.rankPattern(), path);
        int expectedR = patternR != null ? patternR : base.r();
        if (r != expectedR) {
            throw new IOException(file + ": module '" + path + "' has rank " + r + " but the config says " + expectedR);
        }
        Double patternAlpha = pattern(regex, "alpha_pattern", parsed.alphaPattern(), path);
        // fan_in_fan_out follows the base layer's layout, as PEFT corrects it (Linear false, Conv1D true).
        boolean fanInFanOut = m instanceof Linear ? false : m instanceof HfConv1D || base.fanInFanOut();
        LoraConfig c = base.withR(r).withAlpha(patternAlpha != null ? patternAlpha : base.loraAlpha()).withFanInFanOut(fanInFanOut);
        if (existing != null && !existing.adapterNames().isEmpty()
                && existing.config(existing.adapterNames().get(0)).fanInFanOut() != fanInFanOut) {
            throw new IOException(file + ": module '" + path + "' holds adapters with fan_in_fan_out=" + !fanInFanOut
                    + ", the file's config says " + fanInFanOut);
        }
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
            if (w == null || w.dim() != 2) throw new IOException(file + ": module '" + path + "' has no 2-d weight");
            long in = fanInFanOut ? w.size(0) : w.size(1);
            long out = fanInFanOut ? w.size(1) : w.size(0);
            wantA = new long[] {r, in};
            wantB = new long[] {out, r};
        }
        if (!Arrays.equals(a.shape(), wantA) || !Arrays.equals(b.shape(), wantB)) {
            throw new IOException(file + ": module '" + path + "' needs A " + Arrays.toString(wantA) + " and B "
                    + Arrays.toString(wantB) + ", the file has " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
        if (changesBase(c) && (!(m instanceof Linear) || r > Math.min(wantA[1], wantB[0]))) {
            throw new IOException(file + ": module '" + path + "': init_lora_weights " + c.initLoraWeights()
                    + " needs a Linear layer with r <= min(in, out), got a " + m.getClass().getSimpleName() + " and r = " + r);
        }
        if (magnitude != null && !Arrays.equals(magnitude.shape(), new long[] {wantB[0]})) {
            throw new IOException(file + ": module '" + path + "' needs a " + MAGNITUDE.substring(1) + " of shape [" + wantB[0] + "], the file has "
                    + Arrays.toString(magnitude.shape()));
        }
        return new Plan(path, m, existing, c, a, b, magnitude);
    }

    /** PEFT's {@code get_pattern_key}: the value of the first key (in file order) matching {@code path}, else null. */
    static <V> V pattern(BoundedRegex regex, String field, Map<Pattern, V> patterns, String path) throws IOException {
        for (var e : patterns.entrySet()) if (regex.matches(field, e.getKey(), path)) return e.getValue();
        return null;
    }
}
