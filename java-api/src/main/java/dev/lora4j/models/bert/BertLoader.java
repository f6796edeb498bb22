package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.hf.HfCheckpoint;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Builds BERT models from Hugging Face checkpoint folders ({@code config.json} +
 * {@code model.safetensors} or shards) and saves them back in that layout. Keys are matched
 * exactly: a missing weight, or an unexpected one other than HF's ignorable
 * {@code embeddings.position_ids} buffer (and, for a bare encoder, the heads of
 * {@code BertFor...} checkpoints: {@code cls.*}, {@code classifier.*}), is an error naming it.
 * The models come in eval mode. Stateless, thread-safe.
 */
public final class BertLoader {

    private BertLoader() {}

    /** A {@link BertModel} from a checkpoint of BertModel or of a BertFor... model (whose {@code bert.} prefix is taken off). */
    public static BertModel bertModel(Path dir) throws IOException {
        try (HfCheckpoint.Contents checkpoint = HfCheckpoint.read(dir)) {
            BertConfig config = BertConfig.fromJson(checkpoint.config());
            Map<String, Tensor> weights = checkpoint.weights();
            Map<String, Tensor> encoder = new LinkedHashMap<>();
            boolean prefixed = weights.keySet().stream().anyMatch(k -> k.startsWith("bert."));
            for (var e : weights.entrySet()) {
                String k = e.getKey();
                if (prefixed) {
                    if (k.startsWith("bert.")) encoder.put(k.substring(5), e.getValue());
                    else if (!k.startsWith("cls.") && !k.startsWith("classifier.")) encoder.put(k, e.getValue());
                } else {
                    encoder.put(k, e.getValue());
                }
            }
            boolean pooler = encoder.containsKey("pooler.dense.weight");
            BertModel model = new BertModel(config, pooler);
            load(model, encoder);
            return model;
        }
    }

    /** A {@link BertForSequenceClassification} from a checkpoint of that architecture. */
    public static BertForSequenceClassification sequenceClassification(Path dir) throws IOException {
        try (HfCheckpoint.Contents checkpoint = HfCheckpoint.read(dir)) {
            BertForSequenceClassification model = new BertForSequenceClassification(BertConfig.fromJson(checkpoint.config()));
            load(model, checkpoint.weights());
            return model;
        }
    }

    private static void load(Module model, Map<String, Tensor> weights) {
        Map<String, Tensor> w = new LinkedHashMap<>(weights);
        w.remove("embeddings.position_ids");
        w.remove("bert.embeddings.position_ids");
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
