package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * BertConfig.fromJson takes each field as Hugging Face's BertConfig would use it, or refuses it
 * naming the field: integers must be JSON integers in range (no rounding of 2.7, no clamping
 * of 1e12, no reading of "3"), floats must be numbers, booleans booleans, and null is taken
 * only where HF's config allows None with the same meaning (classifier_dropout, architectures,
 * id2label, label2id, is_decoder, add_cross_attention).
 */
class BertConfigJsonTest {

    static final String BASE = "\"model_type\": \"bert\", \"vocab_size\": 50, \"hidden_size\": 16, \"num_hidden_layers\": 1, "
            + "\"num_attention_heads\": 4, \"intermediate_size\": 32";

    static BertConfig parse(String extra) {
        return BertConfig.fromJson("{" + BASE + (extra.isEmpty() ? "" : ", " + extra) + "}");
    }

    static void refused(String extra, String field) {
        var e = assertThrows(IllegalArgumentException.class, () -> parse(extra), extra);
        assertTrue(e.getMessage().contains(field), extra + " -> " + e.getMessage());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "\"num_labels\": 1e12                   | num_labels",
            "\"num_labels\": 2.7                    | num_labels",
            "\"num_labels\": 3.0                    | num_labels",
            "\"num_labels\": \"3\"                  | num_labels",
            "\"num_labels\": 10000000000            | num_labels",
            "\"num_labels\": null                   | num_labels",
            "\"num_labels\": true                   | num_labels",
            "\"classifier_dropout\": \"x\"          | classifier_dropout",
            "\"classifier_dropout\": true           | classifier_dropout",
            "\"classifier_dropout\": [0.1]          | classifier_dropout",
            "\"hidden_dropout_prob\": \"0.1\"       | hidden_dropout_prob",
            "\"hidden_dropout_prob\": null          | hidden_dropout_prob",
            "\"attention_probs_dropout_prob\": null | attention_probs_dropout_prob",
            "\"layer_norm_eps\": null               | layer_norm_eps",
            "\"hidden_size\": null                  | hidden_size",
            "\"max_position_embeddings\": null      | max_position_embeddings",
            "\"type_vocab_size\": 2.5               | type_vocab_size",
            "\"pad_token_id\": \"0\"                | pad_token_id",
            "\"hidden_act\": null                   | hidden_act",
            "\"position_embedding_type\": null      | position_embedding_type",
            "\"model_type\": null                   | model_type",
            "\"is_decoder\": \"false\"              | is_decoder",
            "\"is_decoder\": 0                      | is_decoder",
            "\"add_cross_attention\": \"no\"        | add_cross_attention",
            "\"architectures\": \"BertModel\"       | architectures",
            "\"architectures\": [1]                 | architectures",
            "\"id2label\": [\"a\", \"b\"]           | id2label",
            "\"id2label\": {\"a\": \"x\"}           | id2label",
            "\"id2label\": {\"0\": 5}               | id2label",
            "\"label2id\": [1]                      | label2id",
            "\"vocab_size\": 60                     | vocab_size",
    })
    void fieldsOfTheWrongTypeOrRangeAreRefusedByName(String extra, String field) {
        refused(extra, field);
    }

    @Test
    void valuesHuggingFaceAcceptsAreTakenAsItTakesThem() {
        assertNull(parse("\"classifier_dropout\": null").classifierDropout());
        assertEquals(0.0, parse("\"classifier_dropout\": 0").classifierDropout());
        assertEquals(0.25, parse("\"classifier_dropout\": 0.25").classifierDropout());
        assertEquals(0.0, parse("\"hidden_dropout_prob\": 0").hiddenDropoutProb());
        assertEquals(7, parse("\"num_labels\": 7").numLabels());
        assertEquals(2, parse("").numLabels());
        assertEquals(3, parse("\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}").numLabels());
        assertEquals(3, parse("\"num_labels\": 3, \"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}").numLabels());
        assertEquals(2, parse("\"id2label\": null, \"label2id\": null").numLabels());
        assertTrue(parse("\"architectures\": null").architectures().isEmpty());
        assertEquals(16, parse("\"is_decoder\": false, \"add_cross_attention\": null").hiddenSize());
        assertEquals(1e-5, parse("\"layer_norm_eps\": 1e-5").layerNormEps());
    }

    @Test
    void aFieldGivenTwiceIsRefused() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> BertConfig.fromJson("{" + BASE + ", \"vocab_size\": 16000000}"));
        assertTrue(e.getMessage().contains("vocab_size"), e.getMessage());
    }

    /** A config.json that is no JSON is refused by kind and position: it may be a link to a secret, never quoted. */
    @Test
    void badJsonIsRefusedWithoutQuotingTheFile() {
        for (String text : new String[] {"sk_live_SECRET_4711", "{\"vocab_size\": sk_live_SECRET_4711}", "{" + BASE + "} sk_live_SECRET_4711"}) {
            var e = assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson(text), text);
            assertTrue(e.getMessage().contains("line 1, column"), e.getMessage());
            assertFalse(e.getMessage().contains("SECRET"), e.getMessage());
            assertNull(e.getCause(), "no chained Jackson exception quoting it");
        }
    }

    /** As Hugging Face: pad_token_id null is no padding index; a num_labels that disagrees with id2label yields to it. */
    @Test
    void nullPaddingAndDisagreeingLabelCountsAreReadAsHuggingFaceReadsThem() {
        BertConfig c = parse("\"pad_token_id\": null, \"num_labels\": 3, \"id2label\": {\"0\": \"a\", \"1\": \"b\"}");
        assertEquals(-1, c.padTokenId());
        assertEquals(2, c.numLabels());
        assertTrue(c.toJson().contains("\"pad_token_id\" : null") || c.toJson().contains("\"pad_token_id\":null"), c.toJson());
        assertEquals(-1, BertConfig.fromJson(c.toJson()).padTokenId());
        try (BertModel m = new BertModel(c, false)) {
            assertEquals(-1, ((dev.lora4j.nn.Embedding) m.module("embeddings.word_embeddings")).paddingIdx(), "no padding index");
        }
    }

    /** bert-base-chinese's config.json as published (Google's pooler_* fields, directionality), with a newer transformers' "dtype". */
    @Test
    void publishedConfigsWithFieldsHuggingFaceIgnoresParse() {
        BertConfig c = BertConfig.fromJson("""
                {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "directionality": "bidi",
                 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
                 "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
                 "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "pooler_fc_size": 768,
                 "pooler_num_attention_heads": 12, "pooler_num_fc_layers": 3, "pooler_size_per_head": 128,
                 "pooler_type": "first_token_transform", "type_vocab_size": 2, "vocab_size": 21128, "dtype": "float32"}
                """);
        assertEquals(21128, c.vocabSize());
        assertEquals(12, c.numHiddenLayers());
    }

    /** Whatever the constructor accepts, toJson writes and fromJson reads back: no infinite or NaN epsilon or dropout. */
    @Test
    void nonFiniteEpsilonsAndProbabilitiesAreRefusedByTheConstructor() {
        for (double eps : new double[] {Double.POSITIVE_INFINITY, Double.NaN, 0, -1e-12, Double.NEGATIVE_INFINITY}) {
            var e = assertThrows(IllegalArgumentException.class, () -> new BertConfig(50, 16, 1, 4, 32, "gelu", 0.1, 0.1, 512, 2,
                    eps, 0, java.util.List.of(), 2, null), "layer_norm_eps " + eps);
            assertTrue(e.getMessage().contains("layer_norm_eps"), e.getMessage());
        }
        for (double p : new double[] {Double.POSITIVE_INFINITY, Double.NaN, -0.1, 1, Double.NEGATIVE_INFINITY}) {
            assertThrows(IllegalArgumentException.class, () -> new BertConfig(50, 16, 1, 4, 32, "gelu", p, 0.1, 512, 2,
                    1e-12, 0, java.util.List.of(), 2, null), "hidden_dropout_prob " + p);
            assertThrows(IllegalArgumentException.class, () -> new BertConfig(50, 16, 1, 4, 32, "gelu", 0.1, p, 512, 2,
                    1e-12, 0, java.util.List.of(), 2, null), "attention_probs_dropout_prob " + p);
            assertThrows(IllegalArgumentException.class, () -> new BertConfig(50, 16, 1, 4, 32, "gelu", 0.1, 0.1, 512, 2,
                    1e-12, 0, java.util.List.of(), 2, p), "classifier_dropout " + p);
        }
        refused("\"layer_norm_eps\": 1e400", "layer_norm_eps");
        BertConfig c = parse("\"layer_norm_eps\": 1e300");
        assertEquals(c, BertConfig.fromJson(c.toJson()), "what it writes it reads");
    }
}
