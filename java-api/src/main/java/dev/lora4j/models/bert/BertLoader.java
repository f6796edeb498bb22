package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.hf.HfCheckpoint;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds BERT models from Hugging Face checkpoint folders ({@code config.json} +
 * {@code model.safetensors} or shards) and saves them back in that layout. Both files are
 * untrusted: before anything is built, {@code config.json}'s sizes are checked against the
 * checkpoint's tensors (its layer count against the checkpoint's {@code encoder.layer.N}, every
 * tensor's shape against the one the config gives), so a config whose sizes the checkpoint does
 * not have is refused naming the field and the checkpoint's value, and the model built never has
 * more elements than the checkpoint's tensors. Keys are matched exactly: a missing weight, or an unexpected one
 * other than HF's ignorable {@code embeddings.position_ids} buffer (and, for a bare encoder, the
 * heads of {@code BertFor...} checkpoints: {@code cls.*}, {@code classifier.*}), is an error
 * naming it; so are two keys for one parameter ({@code bert.embeddings...} and
 * {@code embeddings...}). A config or keys that do not fit are refused with an
 * {@link IllegalArgumentException}, files that cannot be read ({@link HfCheckpoint#read}) with an
 * {@link IOException}. The models come in eval mode. Stateless, thread-safe.
 */
public final class BertLoader {

    private static final Set<String> IGNORED = Set.of("embeddings.position_ids", "bert.embeddings.position_ids");
    /** How many key names a refusal lists (a hostile checkpoint may hold millions). */
    private static final int NAMES_SHOWN = 20;

    private BertLoader() {}

    /**
     * A {@link BertModel} from a checkpoint of BertModel or of a BertFor... model (whose
     * {@code bert.} prefix is taken off), with a pooler when the checkpoint has one.
     *
     * @throws IllegalArgumentException when config.json is malformed or does not fit the checkpoint,
     *     or the checkpoint's keys do not fit the model (naming the field or the keys)
     */
    public static BertModel bertModel(Path dir) throws IOException {
        try (HfCheckpoint.Contents checkpoint = HfCheckpoint.read(dir)) {
            BertConfig config = config(dir, checkpoint);
            Map<String, Tensor> weights = checkpoint.weights();
            Map<String, Tensor> encoder = new LinkedHashMap<>();
            Map<String, String> from = new HashMap<>(); // encoder key -> checkpoint key
            boolean prefixed = weights.keySet().stream().anyMatch(k -> k.startsWith("bert."));
            for (var e : weights.entrySet()) {
                String k = e.getKey();
                String target;
                if (prefixed && k.startsWith("bert.")) target = k.substring(5);
                else if (prefixed && (k.startsWith("cls.") || k.startsWith("classifier."))) continue;
                else target = k;
                String other = from.putIfAbsent(target, k);
                if (other != null) {
                    throw new IllegalArgumentException(dir + ": the checkpoint's keys '" + other + "' and '" + k
                            + "' both give the encoder's " + target + "; keep one of them");
                }
                encoder.put(target, e.getValue());
            }
            boolean pooler = encoder.containsKey("pooler.dense.weight");
            check(dir, config, encoder, pooler, false, "BertModel");
            BertModel model = new BertModel(config, pooler);
            load(model, encoder);
            return model;
        }
    }

    /**
     * A {@link BertForSequenceClassification} from a checkpoint of that architecture.
     *
     * @throws IllegalArgumentException as {@link #bertModel}
     */
    public static BertForSequenceClassification sequenceClassification(Path dir) throws IOException {
        try (HfCheckpoint.Contents checkpoint = HfCheckpoint.read(dir)) {
            BertConfig config = config(dir, checkpoint);
            check(dir, config, checkpoint.weights(), true, true, "BertForSequenceClassification");
            BertForSequenceClassification model = new BertForSequenceClassification(config);
            load(model, checkpoint.weights());
            return model;
        }
    }

    private static BertConfig config(Path dir, HfCheckpoint.Contents checkpoint) {
        try {
            return BertConfig.fromJson(checkpoint.config());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(dir.resolve(HfCheckpoint.CONFIG) + ": " + e.getMessage(), e);
        }
    }

    /** One dimension of an expected shape: its size and the config field that gives it. */
    private record Dim(String field, int size) {}

    /**
     * The config's layer count against the checkpoint's layers, then every expected tensor's shape
     * against the checkpoint's, and no key left over; all before anything is allocated. The layer
     * count comes first, so that the expected keys are never more than the checkpoint's.
     */
    private static void check(Path dir, BertConfig c, Map<String, Tensor> weights, boolean pooler, boolean classifier, String what) {
        String prefix = classifier ? "bert." : "";
        String configFile = dir.resolve(HfCheckpoint.CONFIG).toString();
        if (classifier && weights.keySet().stream().noneMatch(k -> k.startsWith(prefix))) {
            throw new IllegalArgumentException(dir + ": the checkpoint has no bert.* keys: it is not one of " + what
                    + " (BertLoader.bertModel reads a bare encoder)");
        }
        java.util.TreeSet<Integer> layers = new java.util.TreeSet<>();
        String layerKey = prefix + "encoder.layer.";
        for (String k : weights.keySet()) {
            if (!k.startsWith(layerKey)) continue;
            int dot = k.indexOf('.', layerKey.length());
            try {
                int i = Integer.parseInt(k.substring(layerKey.length(), dot < 0 ? k.length() : dot));
                if (i >= 0) layers.add(i);
            } catch (NumberFormatException e) {
                // not a layer index: an unexpected key, named below
            }
        }
        int n = c.numHiddenLayers();
        if (layers.size() != n || (n > 0 && layers.last() != n - 1)) {
            String has;
            if (layers.isEmpty()) has = "the checkpoint has 0 (no " + layerKey + "N weights)";
            else if (layers.last() == layers.size() - 1) {
                has = "the checkpoint has " + layers.size() + " (" + layerKey + "0 to " + layerKey + layers.last() + ")";
            } else {
                has = "the checkpoint's " + layerKey + "N indices are " + names(layers.stream().map(String::valueOf).toList())
                        + ", not 0 to " + (layers.size() - 1);
            }
            throw new IllegalArgumentException(configFile + ": num_hidden_layers is " + n + " but " + has);
        }
        Map<String, Dim[]> expected = spec(c, pooler, classifier);
        Map<String, String> fieldErrors = new LinkedHashMap<>();
        List<String> rankErrors = new ArrayList<>(), missing = new ArrayList<>(), unexpected = new ArrayList<>();
        for (var e : expected.entrySet()) {
            Tensor t = weights.get(e.getKey());
            if (t == null) {
                missing.add(e.getKey());
                continue;
            }
            long[] shape = t.shape();
            Dim[] dims = e.getValue();
            if (shape.length != dims.length) {
                rankErrors.add(e.getKey() + " is " + Arrays.toString(shape) + " in the checkpoint but "
                        + Arrays.toString(Arrays.stream(dims).mapToInt(Dim::size).toArray()) + " by the config");
                continue;
            }
            for (int i = 0; i < dims.length; i++) {
                if (shape[i] != dims[i].size() && !fieldErrors.containsKey(dims[i].field())) {
                    fieldErrors.put(dims[i].field(), dims[i].field() + " is " + dims[i].size() + " but the checkpoint has " + shape[i]
                            + " (" + e.getKey() + " is " + Arrays.toString(shape) + ")");
                }
            }
        }
        for (String k : weights.keySet()) if (!expected.containsKey(k) && !IGNORED.contains(k)) unexpected.add(k);
        List<String> problems = new ArrayList<>();
        if (!fieldErrors.isEmpty()) problems.add("config.json's " + String.join("; ", fieldErrors.values()));
        problems.addAll(rankErrors);
        if (!missing.isEmpty()) problems.add("the checkpoint lacks " + names(missing));
        if (!unexpected.isEmpty()) problems.add("the checkpoint has keys " + what + " does not: " + names(unexpected));
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException((fieldErrors.isEmpty() ? dir.toString() : configFile) + ": the checkpoint does not fit "
                    + what + ": " + String.join("; ", problems));
        }
    }

    private static String names(List<String> names) {
        if (names.size() <= NAMES_SHOWN) return names.toString();
        return names.subList(0, NAMES_SHOWN).toString().replaceFirst("]$", ", ... (" + names.size() + " in all)]");
    }

    /** The shapes of the state dict the config builds, with the field that gives each dimension. */
    private static Map<String, Dim[]> spec(BertConfig c, boolean pooler, boolean classifier) {
        String p = classifier ? "bert." : "";
        Dim h = new Dim("hidden_size", c.hiddenSize()), in = new Dim("intermediate_size", c.intermediateSize());
        Map<String, Dim[]> m = new LinkedHashMap<>();
        m.put(p + "embeddings.word_embeddings.weight", new Dim[] {new Dim("vocab_size", c.vocabSize()), h});
        m.put(p + "embeddings.position_embeddings.weight", new Dim[] {new Dim("max_position_embeddings", c.maxPositionEmbeddings()), h});
        m.put(p + "embeddings.token_type_embeddings.weight", new Dim[] {new Dim("type_vocab_size", c.typeVocabSize()), h});
        m.put(p + "embeddings.LayerNorm.weight", new Dim[] {h});
        m.put(p + "embeddings.LayerNorm.bias", new Dim[] {h});
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = p + "encoder.layer." + i + ".";
            for (String linear : List.of("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")) {
                m.put(l + linear + ".weight", new Dim[] {h, h});
                m.put(l + linear + ".bias", new Dim[] {h});
            }
            m.put(l + "attention.output.LayerNorm.weight", new Dim[] {h});
            m.put(l + "attention.output.LayerNorm.bias", new Dim[] {h});
            m.put(l + "intermediate.dense.weight", new Dim[] {in, h});
            m.put(l + "intermediate.dense.bias", new Dim[] {in});
            m.put(l + "output.dense.weight", new Dim[] {h, in});
            m.put(l + "output.dense.bias", new Dim[] {h});
            m.put(l + "output.LayerNorm.weight", new Dim[] {h});
            m.put(l + "output.LayerNorm.bias", new Dim[] {h});
        }
        if (pooler) {
            m.put(p + "pooler.dense.weight", new Dim[] {h, h});
            m.put(p + "pooler.dense.bias", new Dim[] {h});
        }
        if (classifier) {
            Dim labels = new Dim("num_labels", c.numLabels());
            m.put("classifier.weight", new Dim[] {labels, h});
            m.put("classifier.bias", new Dim[] {labels});
        }
        return m;
    }

    /** The state dict shapes of the model {@code c} builds (BertModel, or BertForSequenceClassification when {@code classifier}). */
    static Map<String, long[]> expectedShapes(BertConfig c, boolean pooler, boolean classifier) {
        Map<String, long[]> out = new LinkedHashMap<>();
        spec(c, pooler, classifier).forEach((k, dims) -> out.put(k, Arrays.stream(dims).mapToLong(Dim::size).toArray()));
        return out;
    }

    private static void load(Module model, Map<String, Tensor> weights) {
        Map<String, Tensor> w = new LinkedHashMap<>(weights);
        w.keySet().removeAll(IGNORED);
        try {
            model.loadStateDict(w, true); // strict: names every missing and unexpected key, checks every shape
        } catch (RuntimeException e) {
            model.close();
            throw new IllegalArgumentException("the checkpoint does not fit " + model.getClass().getSimpleName() + ": "
                    + e.getMessage(), e);
        }
        model.eval();
    }

    /**
     * Writes {@code config.json} and {@code model.safetensors} (metadata {"format": "pt"}) for a model and its
     * config, as a pair ({@link HfCheckpoint#write}): a load running beside the save gets the files of one save.
     */
    public static void save(Module model, BertConfig config, Path dir) throws IOException {
        Map<String, Tensor> state = model.stateDict();
        Map<String, Tensor> contiguous = new LinkedHashMap<>();
        try {
            state.forEach((k, t) -> contiguous.put(k, t.contiguous()));
            HfCheckpoint.write(dir, config.toJson(), contiguous);
        } finally {
            contiguous.values().forEach(Tensor::close);
            state.values().forEach(Tensor::close);
        }
    }
}
