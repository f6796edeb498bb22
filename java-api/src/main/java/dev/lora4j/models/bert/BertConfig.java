package dev.lora4j.models.bert;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The settings of a BERT-family encoder with Hugging Face's {@code config.json} field names
 * ({@code BertConfig}). {@link #fromJson} refuses what lora4j cannot build faithfully: another
 * {@code model_type}, an unknown architecture, a field it does not know, a field given twice or
 * of the wrong JSON type or range, a decoder, relative position embeddings, an unsupported
 * {@code hidden_act}: the message names them. Immutable and thread-safe.
 *
 * @param vocabSize {@code vocab_size}
 * @param hiddenSize {@code hidden_size}
 * @param numHiddenLayers {@code num_hidden_layers}
 * @param numAttentionHeads {@code num_attention_heads}
 * @param intermediateSize {@code intermediate_size}
 * @param hiddenAct {@code hidden_act}: "gelu" (erf), "gelu_new" or "gelu_pytorch_tanh" (tanh form), "relu"
 * @param hiddenDropoutProb {@code hidden_dropout_prob}
 * @param attentionProbsDropoutProb {@code attention_probs_dropout_prob}
 * @param maxPositionEmbeddings {@code max_position_embeddings}
 * @param typeVocabSize {@code type_vocab_size}
 * @param layerNormEps {@code layer_norm_eps}
 * @param padTokenId {@code pad_token_id}, or -1 for none (HF's null: no padding index)
 * @param architectures {@code architectures} (may be empty)
 * @param numLabels labels of a classification head (the size of {@code id2label}, else {@code num_labels}; 2 by default)
 * @param classifierDropout {@code classifier_dropout}, or null for {@code hidden_dropout_prob}
 */
public record BertConfig(int vocabSize, int hiddenSize, int numHiddenLayers, int numAttentionHeads, int intermediateSize,
                         String hiddenAct, double hiddenDropoutProb, double attentionProbsDropoutProb,
                         int maxPositionEmbeddings, int typeVocabSize, double layerNormEps, int padTokenId,
                         List<String> architectures, int numLabels, Double classifierDropout) {

    /** Architectures whose weights hold a BERT encoder this package can build. */
    public static final Set<String> ARCHITECTURES = Set.of("BertModel", "BertForSequenceClassification",
            "BertForMaskedLM", "BertForPreTraining");

    private static final Set<String> KNOWN = Set.of("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
            "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id", "architectures", "model_type",
            "position_embedding_type", "is_decoder", "add_cross_attention", "num_labels", "id2label", "label2id",
            "classifier_dropout");
    /** Fields that do not change the computation (bookkeeping, initialisation, generation, training). */
    private static final Set<String> INFORMATIONAL = Set.of("_name_or_path", "transformers_version", "torch_dtype",
            "gradient_checkpointing", "use_cache", "initializer_range", "bos_token_id", "eos_token_id", "problem_type",
            "output_past", "tie_word_embeddings", "chunk_size_feed_forward", "output_hidden_states", "output_attentions",
            "return_dict", "finetuning_task", "tokenizer_class", "prefix", "task_specific_params",
            // newer transformers write "dtype"; Google's original BERT configs (bert-base-chinese,
            // multilingual) carry pooler_* and directionality, which HF's BertModel never reads
            "dtype", "directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
            "pooler_size_per_head", "pooler_type", "_num_labels", "sep_token_id", "decoder_start_token_id");
    private static final ObjectMapper JSON = dev.lora4j.internal.UntrustedJson.mapper().enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    public BertConfig {
        positive("vocab_size", vocabSize);
        positive("hidden_size", hiddenSize);
        positive("num_hidden_layers", numHiddenLayers);
        positive("num_attention_heads", numAttentionHeads);
        positive("intermediate_size", intermediateSize);
        positive("max_position_embeddings", maxPositionEmbeddings);
        positive("type_vocab_size", typeVocabSize);
        positive("num_labels", numLabels);
        if (hiddenSize % numAttentionHeads != 0) {
            throw new IllegalArgumentException("hidden_size " + hiddenSize + " is not a multiple of num_attention_heads " + numAttentionHeads);
        }
        if (!Set.of("gelu", "gelu_new", "gelu_pytorch_tanh", "relu").contains(hiddenAct)) {
            throw new IllegalArgumentException("hidden_act '" + hiddenAct + "' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)");
        }
        probability("hidden_dropout_prob", hiddenDropoutProb);
        probability("attention_probs_dropout_prob", attentionProbsDropoutProb);
        if (classifierDropout != null) probability("classifier_dropout", classifierDropout);
        if (!(layerNormEps > 0 && Double.isFinite(layerNormEps)))
            throw new IllegalArgumentException("layer_norm_eps must be a finite number > 0, got " + layerNormEps);
        if (padTokenId < -1 || padTokenId >= vocabSize) {
            throw new IllegalArgumentException("pad_token_id " + padTokenId + " is outside the vocabulary of " + vocabSize);
        }
        architectures = List.copyOf(architectures);
        for (String a : architectures) {
            if (!ARCHITECTURES.contains(a)) {
                throw new IllegalArgumentException("architecture '" + a + "' is not supported (supported: " + ARCHITECTURES + ")");
            }
        }
    }

    private static void positive(String name, int v) {
        if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }

    private static void probability(String name, double p) {
        if (!(p >= 0 && p < 1)) throw new IllegalArgumentException(name + " must be in [0, 1), got " + p);
    }

    /** BERT-base's defaults (HF's {@code BertConfig()}), with the given sizes. */
    public static BertConfig of(int vocabSize, int hiddenSize, int numHiddenLayers, int numAttentionHeads, int intermediateSize) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, "gelu", 0.1, 0.1,
                512, 2, 1e-12, 0, List.of("BertModel"), 2, null);
    }

    public int headSize() {
        return hiddenSize / numAttentionHeads;
    }

    /** The dropout of a classification head. */
    public double classifierDropoutOrDefault() {
        return classifierDropout != null ? classifierDropout : hiddenDropoutProb;
    }

    public BertConfig withNumLabels(int n) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, layerNormEps, padTokenId,
                architectures, n, classifierDropout);
    }

    /**
     * Parses a {@code config.json}. Missing optional fields take HF's defaults. Every field must
     * have the JSON type HF's {@code BertConfig} uses it as: sizes and ids are JSON integers that
     * fit an {@code int} (not {@code 2.7}, {@code 1e12} or {@code "3"}), probabilities and
     * {@code layer_norm_eps} numbers, {@code is_decoder} and {@code add_cross_attention}
     * booleans, {@code architectures} a list of strings, {@code id2label} an object from integer
     * strings to strings. {@code null} is taken only where HF takes {@code None} to mean the
     * default: {@code classifier_dropout} (the hidden dropout), {@code architectures},
     * {@code id2label}, {@code label2id}, {@code is_decoder}, {@code add_cross_attention}. As in
     * HF, the labels are {@code id2label}'s when it is given, else {@code num_labels} (2 by
     * default); both given with different counts is refused (HF would warn and take
     * {@code id2label}'s).
     *
     * @throws IllegalArgumentException naming every unknown field, a field given twice, a field
     *     of the wrong type or range, an unsupported architecture, model type or setting
     */
    public static BertConfig fromJson(String json) {
        JsonNode n;
        try {
            n = JSON.readTree(json);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            // Told by kind and position, never quoted: the file may be a link to a secret.
            throw new IllegalArgumentException("config.json is not valid JSON: " + dev.lora4j.internal.UntrustedJson.describe(e));
        }
        if (n == null || !n.isObject()) throw new IllegalArgumentException("config.json must hold a JSON object");
        List<String> unknown = new ArrayList<>();
        n.fieldNames().forEachRemaining(f -> {
            if (!KNOWN.contains(f) && !INFORMATIONAL.contains(f)) unknown.add(f);
        });
        if (!unknown.isEmpty()) throw new IllegalArgumentException("config.json has fields lora4j's BERT does not know: " + unknown);
        String type = text(n, "model_type", "bert");
        if (!type.equals("bert")) throw new IllegalArgumentException("model_type '" + type + "' is not supported (only 'bert')");
        String pos = text(n, "position_embedding_type", "absolute");
        if (!pos.equals("absolute")) throw new IllegalArgumentException("position_embedding_type '" + pos + "' is not supported (only 'absolute')");
        if (bool(n, "is_decoder") || bool(n, "add_cross_attention")) {
            throw new IllegalArgumentException("is_decoder / add_cross_attention: only BERT encoders are supported");
        }
        List<String> arch = new ArrayList<>();
        JsonNode archNode = n.get("architectures");
        if (archNode != null && !archNode.isNull()) {
            if (!archNode.isArray()) throw new IllegalArgumentException("architectures must be a list of strings, got " + archNode);
            for (JsonNode a : archNode) {
                if (!a.isTextual()) throw new IllegalArgumentException("architectures must be a list of strings, got " + archNode);
                arch.add(a.asText());
            }
        }
        JsonNode label2id = n.get("label2id");
        if (label2id != null && !label2id.isNull() && !label2id.isObject()) {
            throw new IllegalArgumentException("label2id must be an object, got " + label2id);
        }
        int labels = numLabels(n);
        JsonNode cd = n.get("classifier_dropout");
        Double classifierDropout = cd == null || cd.isNull() ? null : number(n, "classifier_dropout", Double.NaN);
        return new BertConfig(integer(n, "vocab_size", 30522), integer(n, "hidden_size", 768), integer(n, "num_hidden_layers", 12),
                integer(n, "num_attention_heads", 12), integer(n, "intermediate_size", 3072), text(n, "hidden_act", "gelu"),
                number(n, "hidden_dropout_prob", 0.1), number(n, "attention_probs_dropout_prob", 0.1),
                integer(n, "max_position_embeddings", 512), integer(n, "type_vocab_size", 2), number(n, "layer_norm_eps", 1e-12),
                n.has("pad_token_id") && n.get("pad_token_id").isNull() ? -1 : integer(n, "pad_token_id", 0), arch, labels, classifierDropout);
    }

    /** HF's rule: the size of {@code id2label} when it is given, else {@code num_labels}, else 2. */
    private static int numLabels(JsonNode n) {
        JsonNode id2label = n.get("id2label");
        if (id2label == null || id2label.isNull()) return integer(n, "num_labels", 2);
        if (!id2label.isObject()) throw new IllegalArgumentException("id2label must be an object from label ids to names, got " + id2label);
        Set<Integer> ids = new java.util.HashSet<>();
        for (var e : (Iterable<java.util.Map.Entry<String, JsonNode>>) id2label::fields) {
            int id;
            try {
                id = Integer.parseInt(e.getKey()); // HF: int(key)
            } catch (NumberFormatException x) {
                throw new IllegalArgumentException("id2label key '" + e.getKey() + "' is not an integer");
            }
            if (!ids.add(id)) throw new IllegalArgumentException("id2label gives label id " + id + " twice");
            if (!e.getValue().isTextual()) throw new IllegalArgumentException("id2label['" + e.getKey() + "'] must be a string, got " + e.getValue());
        }
        if (n.has("num_labels")) integer(n, "num_labels", 2); // well-typed; as HF, id2label's count wins (HF warns)
        return ids.size();
    }

    private static String text(JsonNode n, String f, String dflt) {
        JsonNode v = n.get(f);
        if (v == null) return dflt;
        if (!v.isTextual()) throw new IllegalArgumentException(f + " must be a string, got " + v);
        return v.asText();
    }

    /** An optional boolean; null means false, as HF's {@code None} does where it is tested. */
    private static boolean bool(JsonNode n, String f) {
        JsonNode v = n.get(f);
        if (v == null || v.isNull()) return false;
        if (!v.isBoolean()) throw new IllegalArgumentException(f + " must be true or false, got " + v);
        return v.booleanValue();
    }

    private static int integer(JsonNode n, String f, int dflt) {
        JsonNode v = n.get(f);
        if (v == null) return dflt;
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw new IllegalArgumentException(f + " must be an integer from " + Integer.MIN_VALUE + " to " + Integer.MAX_VALUE + ", got " + v);
        }
        return v.intValue();
    }

    private static double number(JsonNode n, String f, double dflt) {
        JsonNode v = n.get(f);
        if (v == null) return dflt;
        if (!v.isNumber()) throw new IllegalArgumentException(f + " must be a number, got " + v);
        return v.doubleValue();
    }

    /** This config as HF's {@code config.json} (fields with HF's names and JSON types). */
    public String toJson() {
        ObjectMapper m = new ObjectMapper();
        ObjectNode o = m.createObjectNode();
        o.putArray("architectures").addAll(architectures.stream().map(o::textNode).toList());
        o.put("attention_probs_dropout_prob", attentionProbsDropoutProb);
        if (classifierDropout == null) o.putNull("classifier_dropout"); else o.put("classifier_dropout", classifierDropout);
        o.put("hidden_act", hiddenAct);
        o.put("hidden_dropout_prob", hiddenDropoutProb);
        o.put("hidden_size", hiddenSize);
        o.put("intermediate_size", intermediateSize);
        o.put("layer_norm_eps", layerNormEps);
        o.put("max_position_embeddings", maxPositionEmbeddings);
        o.put("model_type", "bert");
        o.put("num_attention_heads", numAttentionHeads);
        o.put("num_hidden_layers", numHiddenLayers);
        o.put("num_labels", numLabels);
        if (padTokenId < 0) o.putNull("pad_token_id");
        else o.put("pad_token_id", padTokenId);
        o.put("position_embedding_type", "absolute");
        o.put("type_vocab_size", typeVocabSize);
        o.put("vocab_size", vocabSize);
        try {
            return m.writerWithDefaultPrettyPrinter().writeValueAsString(o);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
