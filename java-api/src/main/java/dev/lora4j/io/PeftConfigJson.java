package dev.lora4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.internal.UntrustedJson;
import dev.lora4j.lora.LoraConfig;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * PEFT's {@code adapter_config.json} for LoRA, read strictly and written with PEFT's JSON types:
 * every field lora4j honours must hold the JSON type PEFT writes (numbers, booleans, strings,
 * lists, objects) and a value PEFT accepts; anything else is refused by the field's name, never
 * coerced ({@code "r": 4.9}, {@code "lora_alpha": "sixteen"}, {@code "use_rslora": "True"}).
 * The file is one JSON object with nothing after it but whitespace; a file that is not is refused
 * by the kind and the position of the error, without quoting it. Stateless, thread-safe.
 */
final class PeftConfigJson {

    /** Refuses text after the object, as Python's json.load does; writes indented, as PEFT does. */
    private static final ObjectMapper JSON = UntrustedJson.mapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Fields lora4j reads and honours. */
    private static final Set<String> HONOURED = Set.of("peft_type", "r", "lora_alpha", "lora_dropout", "fan_in_fan_out",
            "use_rslora", "target_modules", "rank_pattern", "alpha_pattern", "bias", "init_lora_weights", "exclude_modules",
            "modules_to_save", "use_dora");
    /** Fields that only describe where the adapter came from or how it was trained. */
    private static final Set<String> DESCRIPTIVE = Set.of("base_model_name_or_path", "revision", "task_type", "inference_mode",
            "auto_mapping", "peft_version", "lora_bias", "runtime_config");
    /** Fields that change the adapter's meaning unless they hold their default (null, false, empty). */
    private static final Set<String> REFUSED_UNLESS_DEFAULT = Set.of("layers_to_transform",
            "layers_pattern", "layer_replication", "megatron_config", "megatron_core", "loftq_config", "trainable_token_indices",
            "eva_config", "corda_config", "target_parameters", "qalora_group_size", "use_qalora", "alora_invocation_tokens");
    /**
     * PEFT's {@code init_lora_weights} strings that lora4j cannot re-run on load (they need
     * quantization or data): a file made with them cannot be applied to a plain base.
     */
    private static final Set<String> INIT_REFUSED = Set.of("loftq", "corda");
    private static final Pattern PISSA_NITER = Pattern.compile("pissa_niter_([0-9]{1,9})");

    private PeftConfigJson() {}

    /** What a config file says: the adapter's defaults, its per-module patterns, and the fields reported. */
    record Parsed(LoraConfig config, Map<Pattern, Integer> rankPattern, Map<Pattern, Double> alphaPattern,
                  List<String> modulesToSave, List<String> unknownFields, List<String> ignoredFields,
                  Selection targets, Selection excluded) {}

    /**
     * PEFT's module selection by {@code target_modules} or {@code exclude_modules}
     * ({@code check_target_module_exists}): a list of names selects a module whose path is a
     * name or ends with "." + a name; a string is a regular expression that must match the whole
     * path ({@code re.fullmatch}); null or empty selects by no name. For {@code target_modules},
     * "all-linear" is kept as a name (PEFT expands it to the model's linear layers).
     */
    record Selection(String field, List<String> names, Pattern regex) {
        boolean isEmpty() {
            return names.isEmpty() && regex == null;
        }

        boolean selects(BoundedRegex bounded, String path) throws IOException {
            if (regex != null) return bounded.matches(field, regex, path);
            return names.stream().anyMatch(n -> path.equals(n) || path.endsWith("." + n));
        }

        @Override
        public String toString() {
            return regex != null ? "\"" + regex.pattern() + "\"" : names.toString();
        }
    }

    static Parsed parse(String where, byte[] bytes, BoundedRegex regex) throws IOException {
        // A bad file is told by the kind and position of the error, never quoted (it may be a link to a secret).
        JsonNode cfg = UntrustedJson.read(JSON, bytes, where);
        if (cfg == null || !cfg.isObject()) throw new IOException(where + " is not a JSON object");
        String type = string(where, cfg, "peft_type", "LORA");
        if (!type.equals("LORA")) throw new IOException(where + ": peft_type " + type + " is not LORA");
        List<String> unknown = new ArrayList<>();
        List<String> ignored = new ArrayList<>();
        for (Iterator<String> it = cfg.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            JsonNode v = cfg.get(f);
            if (HONOURED.contains(f)) continue;
            if (DESCRIPTIVE.contains(f)) {
                ignored.add(f);
            } else if (REFUSED_UNLESS_DEFAULT.contains(f)) {
                if (!isDefault(v)) throw new IOException(where + ": " + f + " = " + v + " is not supported by lora4j");
            } else {
                unknown.add(f);
            }
        }
        int r = rank(where, "r", cfg.get("r"), 8);
        double alpha = alpha(where, "lora_alpha", cfg.get("lora_alpha"), 8);
        JsonNode d = cfg.get("lora_dropout");
        double dropout = d == null ? 0 : number(where, "lora_dropout", d);
        if (!(dropout >= 0 && dropout < 1)) throw new IOException(where + ": lora_dropout must be in [0, 1), got " + d);
        boolean fanInFanOut = bool(where, cfg, "fan_in_fan_out");
        boolean rslora = bool(where, cfg, "use_rslora");
        String bias = string(where, cfg, "bias", "none");
        LoraConfig.Bias b = switch (bias) {
            case "none" -> LoraConfig.Bias.NONE;
            case "all" -> LoraConfig.Bias.ALL;
            case "lora_only" -> LoraConfig.Bias.LORA_ONLY;
            default -> throw new IOException(where + ": bias must be \"none\", \"all\" or \"lora_only\", got '" + bias + "'");
        };
        JsonNode initNode = cfg.get("init_lora_weights");
        LoraConfig.Init init = init(where, initNode);
        int pissaNiter = pissaNiter(where, initNode);
        boolean dora = bool(where, cfg, "use_dora");
        Selection targets = selection(where, "target_modules", cfg.get("target_modules"), regex);
        Selection excluded = selection(where, "exclude_modules", cfg.get("exclude_modules"), regex);
        List<String> modulesToSave = names(where, "modules_to_save", cfg.get("modules_to_save"));
        Map<Pattern, Integer> rankPattern = new LinkedHashMap<>();
        for (var e : object(where, "rank_pattern", cfg.get("rank_pattern")).entrySet()) {
            rankPattern.put(regex.compile("rank_pattern", e.getKey()), rank(where, "rank_pattern['" + e.getKey() + "']", e.getValue(), 0));
        }
        Map<Pattern, Double> alphaPattern = new LinkedHashMap<>();
        for (var e : object(where, "alpha_pattern", cfg.get("alpha_pattern")).entrySet()) {
            alphaPattern.put(regex.compile("alpha_pattern", e.getKey()), alpha(where, "alpha_pattern['" + e.getKey() + "']", e.getValue(), 0));
        }
        LoraConfig config;
        try {
            config = new LoraConfig(r, alpha, dropout, fanInFanOut, rslora, init, targets.names(),
                    targets.regex() == null ? null : targets.regex().pattern(), excluded.names(), b, dora, pissaNiter);
        } catch (IllegalArgumentException e) {
            throw new IOException(where + ": " + e.getMessage(), e);
        }
        return new Parsed(config, rankPattern, alphaPattern, modulesToSave, List.copyOf(unknown), List.copyOf(ignored), targets, excluded);
    }

    private static int rank(String where, String field, JsonNode v, int def) throws IOException {
        if (v == null && def > 0) return def;
        if (v == null || !v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 1) {
            throw new IOException(where + ": " + field + " must be an integer >= 1, got " + v);
        }
        return v.intValue();
    }

    private static double alpha(String where, String field, JsonNode v, double def) throws IOException {
        if (v == null && def > 0) return def;
        double a = number(where, field, v);
        if (!(a > 0) || Double.isInfinite(a)) throw new IOException(where + ": " + field + " must be a finite number > 0, got " + v);
        return a;
    }

    private static double number(String where, String field, JsonNode v) throws IOException {
        if (v == null || !v.isNumber()) throw new IOException(where + ": " + field + " must be a number, got " + v);
        double x = v.doubleValue();
        if (!Double.isFinite(x)) throw new IOException(where + ": " + field + " must be finite, got " + v);
        return x;
    }

    private static boolean bool(String where, JsonNode cfg, String field) throws IOException {
        JsonNode v = cfg.get(field);
        if (v == null) return false;
        if (!v.isBoolean()) throw new IOException(where + ": " + field + " must be true or false, got " + v);
        return v.booleanValue();
    }

    private static String string(String where, JsonNode cfg, String field, String def) throws IOException {
        JsonNode v = cfg.get(field);
        if (v == null) return def;
        if (!v.isTextual()) throw new IOException(where + ": " + field + " must be a string, got " + v);
        return v.textValue();
    }

    private static LoraConfig.Init init(String where, JsonNode v) throws IOException {
        if (v == null || v.isBoolean()) return LoraConfig.Init.DEFAULT; // the factors come from the file either way
        if (!v.isTextual()) throw new IOException(where + ": init_lora_weights must be true, false or one of PEFT's names, got " + v);
        String s = v.textValue();
        if (s.equals("gaussian")) return LoraConfig.Init.GAUSSIAN;
        if (s.equals("orthogonal") || s.equals("eva")) return LoraConfig.Init.DEFAULT; // init only: the file holds the trained factors
        // PiSSA and OLoRA change the base weight; re-run on load as PEFT does (the base becomes the residual).
        if (s.equals("pissa") || pissaNiter(where, v) > 0) return LoraConfig.Init.PISSA;
        if (s.equals("olora")) return LoraConfig.Init.OLORA;
        if (INIT_REFUSED.contains(s)) {
            throw new IOException(where + ": init_lora_weights \"" + s + "\" changes the base weights in a way lora4j cannot apply"
                    + " from an adapter folder (convert the adapter to a plain LoRA one in PEFT first)");
        }
        throw new IOException(where + ": init_lora_weights \"" + s + "\" is no value PEFT knows");
    }

    /** The n of {@code "pissa_niter_<n>"} (n >= 1), 0 for any other value; refuses a malformed count by name. */
    private static int pissaNiter(String where, JsonNode v) throws IOException {
        if (v == null || !v.isTextual() || !v.textValue().startsWith("pissa_niter_")) return 0;
        java.util.regex.Matcher m = PISSA_NITER.matcher(v.textValue());
        if (!m.matches() || Integer.parseInt(m.group(1)) < 1) {
            throw new IOException(where + ": init_lora_weights " + v + " must be \"pissa_niter_<n>\" with an integer n >= 1");
        }
        return Integer.parseInt(m.group(1));
    }

    private static Selection selection(String where, String field, JsonNode v, BoundedRegex regex) throws IOException {
        if (v != null && v.isTextual()) {
            // PEFT compares the shorthand case-insensitively; any other string is a regex.
            if (v.textValue().equalsIgnoreCase("all-linear")) return new Selection(field, List.of("all-linear"), null);
            return new Selection(field, List.of(), regex.compileWhole(field, v.textValue()));
        }
        return new Selection(field, List.copyOf(names(where, field, v)), null);
    }

    private static List<String> names(String where, String field, JsonNode v) throws IOException {
        List<String> out = new ArrayList<>();
        if (v == null || v.isNull()) return out;
        if (v.isTextual()) {
            out.add(v.textValue());
            return out;
        }
        if (!v.isArray()) throw new IOException(where + ": " + field + " must be a list of names, a string or null, got " + v);
        for (JsonNode n : v) {
            if (!n.isTextual()) throw new IOException(where + ": " + field + " must hold strings, got " + n);
            out.add(n.textValue());
        }
        return out;
    }

    private static Map<String, JsonNode> object(String where, String field, JsonNode v) throws IOException {
        Map<String, JsonNode> out = new LinkedHashMap<>();
        if (v == null || v.isNull()) return out;
        if (!v.isObject()) throw new IOException(where + ": " + field + " must be an object, got " + v);
        v.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue()));
        return out;
    }

    private static boolean isDefault(JsonNode v) {
        return v == null || v.isNull() || v.isBoolean() && !v.asBoolean() || (v.isArray() || v.isObject()) && v.isEmpty()
                || v.isNumber() && v.asDouble() == 0;
    }

    /**
     * The config file for {@code config} as PEFT writes it: JSON booleans, numbers, lists and
     * objects under PEFT's names and only values PEFT knows ({@code init_lora_weights} is
     * {@code true}, {@code "gaussian"}, {@code "pissa"}, {@code "pissa_niter_<n>"} or
     * {@code "olora"}; lora4j's NORMAL init, which PEFT has no name for, is written as
     * {@code true}: the saved factors do not depend on it).
     */
    static byte[] write(LoraConfig config, boolean fanInFanOut, List<String> targets, Map<String, Integer> rankPattern,
                        Map<String, Double> alphaPattern, List<String> modulesToSave) throws IOException {
        ObjectNode json = JSON.createObjectNode();
        json.putNull("base_model_name_or_path");
        json.put("peft_type", "LORA");
        json.putNull("task_type");
        json.put("inference_mode", true);
        json.put("r", config.r());
        putNumber(json, "lora_alpha", config.loraAlpha());
        json.put("lora_dropout", config.loraDropout());
        json.put("fan_in_fan_out", fanInFanOut);
        json.put("use_rslora", config.useRslora());
        json.put("bias", config.bias().name().toLowerCase(Locale.ROOT));
        switch (config.init()) {
            case GAUSSIAN, PISSA, OLORA -> json.put("init_lora_weights", config.initLoraWeights());
            case DEFAULT, NORMAL -> json.put("init_lora_weights", true);
        }
        var t = json.putArray("target_modules");
        targets.forEach(t::add);
        json.putNull("exclude_modules");
        ObjectNode rp = json.putObject("rank_pattern");
        rankPattern.forEach(rp::put);
        ObjectNode ap = json.putObject("alpha_pattern");
        alphaPattern.forEach((k, v) -> putNumber(ap, k, v));
        if (modulesToSave.isEmpty()) {
            json.putNull("modules_to_save");
        } else {
            var mts = json.putArray("modules_to_save");
            modulesToSave.forEach(mts::add);
        }
        json.putNull("layers_to_transform");
        json.putNull("layers_pattern");
        json.put("use_dora", config.useDora());
        return JSON.writeValueAsBytes(json);
    }

    /** An integral value as a JSON integer (PEFT types lora_alpha as int), else as a number. */
    private static void putNumber(ObjectNode json, String field, double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1L << 53) json.put(field, (long) v);
        else json.put(field, v);
    }
}
