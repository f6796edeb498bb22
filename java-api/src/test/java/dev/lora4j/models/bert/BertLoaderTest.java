package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import dev.lora4j.io.Safetensors;
import dev.lora4j.nn.Module;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * BertLoader checks config.json against the checkpoint before it builds anything: a config
 * whose sizes the checkpoint does not have is refused naming the field and the checkpoint's
 * value, however large the config's sizes (the sizes used here would need far more memory than
 * the machine has, so building first fails or takes the machine down); and two checkpoint keys
 * that name one parameter are refused.
 */
@ExtendWith(ScopePerTest.class)
class BertLoaderTest {

    static final BertConfig TINY = BertModelTest.TINY; // vocab 50, hidden 16, 2 layers, 4 heads, intermediate 32, 20 positions, 2 types, 3 labels

    @TempDir
    Path dir;

    /** Writes the model's state (keys as they are, plus extra) and a config.json with changed fields; no digest, as other tools write. */
    static void writeCheckpoint(Path dir, Module model, Map<String, Tensor> extra, String... fieldsAndValues) throws Exception {
        Map<String, Tensor> state = new LinkedHashMap<>();
        model.stateDict().forEach((k, t) -> state.put(k, t.contiguous()));
        state.putAll(extra);
        Safetensors.write(dir.resolve("model.safetensors"), state);
        ObjectMapper m = new ObjectMapper();
        ObjectNode config = (ObjectNode) m.readTree(TINY.toJson());
        for (int i = 0; i < fieldsAndValues.length; i += 2) config.set(fieldsAndValues[i], m.readTree(fieldsAndValues[i + 1]));
        Files.writeString(dir.resolve("config.json"), m.writeValueAsString(config));
    }

    static IllegalArgumentException refusedNaming(java.util.concurrent.Callable<?> load, String... parts) {
        var e = assertThrows(IllegalArgumentException.class, () -> {
            try (var m = (AutoCloseable) load.call()) {
                fail("loaded");
            }
        });
        for (String p : parts) assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        return e;
    }

    @ParameterizedTest
    @CsvSource({
            // field, config value, other changed field (or -), its value, the checkpoint's value of field
            "vocab_size, 16000000, -, -, 50",
            "vocab_size, 2000000000, -, -, 50",
            "vocab_size, 2000000000, hidden_size, 1024, 16",
            "hidden_size, 1073741824, -, -, 16",
            "num_hidden_layers, 20000, -, -, 2",
            "num_hidden_layers, 1, -, -, 2",
            "intermediate_size, 1073741824, -, -, 32",
            "max_position_embeddings, 1073741824, -, -, 20",
            "type_vocab_size, 1073741824, -, -, 2",
    })
    void configSizesTheCheckpointDoesNotHaveAreRefusedBeforeBuilding(String field, String value, String other, String otherValue,
                                                                    String checkpointValue) throws Exception {
        try (BertModel m = new BertModel(TINY, true)) {
            if (other.equals("-")) writeCheckpoint(dir, m, Map.of(), field, value);
            else writeCheckpoint(dir, m, Map.of(), field, value, other, otherValue);
        }
        String named = other.equals("-") ? field : other; // with two wrong fields, hidden_size is met first
        String is = named + " is " + (other.equals("-") ? value : otherValue);
        refusedNaming(() -> BertLoader.bertModel(dir), "config.json", is, "the checkpoint has " + checkpointValue + " (");
        refusedNaming(() -> BertLoader.sequenceClassification(dir)); // a BertModel checkpoint, and sizes it does not have
    }

    @Test
    void numLabelsIsCheckedAgainstTheClassifier() throws Exception {
        try (var m = new BertForSequenceClassification(TINY)) {
            writeCheckpoint(dir, m, Map.of(), "num_labels", "1073741824");
        }
        refusedNaming(() -> BertLoader.sequenceClassification(dir), "config.json", "num_labels is 1073741824",
                "the checkpoint has 3 (classifier.weight");
        try (var m = new BertForSequenceClassification(TINY)) {
            writeCheckpoint(dir, m, Map.of(), "num_labels", "3");
        }
        try (var back = BertLoader.sequenceClassification(dir)) {
            assertEquals(3, back.config().numLabels());
        }
    }

    @Test
    void aSizeWithoutATensorToShowItIsRefusedAsAMissingKey() throws Exception {
        // No intermediate.dense.weight at all: nothing in the checkpoint vouches for intermediate_size.
        try (BertModel m = new BertModel(TINY, false)) {
            Map<String, Tensor> state = new LinkedHashMap<>(m.stateDict());
            state.keySet().removeIf(k -> k.endsWith("intermediate.dense.weight"));
            Safetensors.write(dir.resolve("model.safetensors"), state);
        }
        ObjectMapper om = new ObjectMapper();
        ObjectNode config = (ObjectNode) om.readTree(TINY.toJson());
        config.put("intermediate_size", 1073741824);
        Files.writeString(dir.resolve("config.json"), om.writeValueAsString(config));
        refusedNaming(() -> BertLoader.bertModel(dir), "encoder.layer.0.intermediate.dense.weight", "encoder.layer.1.intermediate.dense.weight");
    }

    @Test
    void layerIndicesMustBeZeroToCountMinusOne() throws Exception {
        // Two layers stored as 0 and 5: a count of two does not make them layers 0 and 1.
        try (BertModel m = new BertModel(TINY, false)) {
            Map<String, Tensor> state = new LinkedHashMap<>();
            m.stateDict().forEach((k, t) -> state.put(k.replace("encoder.layer.1.", "encoder.layer.5."), t));
            Safetensors.write(dir.resolve("model.safetensors"), state);
            Files.writeString(dir.resolve("config.json"), TINY.toJson());
        }
        refusedNaming(() -> BertLoader.bertModel(dir), "num_hidden_layers is 2", "[0, 5]");
    }

    @Test
    void aBadConfigIsRefusedNamingTheFile() throws Exception {
        try (BertModel m = new BertModel(TINY, false)) {
            writeCheckpoint(dir, m, Map.of(), "num_labels", "2.7");
        }
        refusedNaming(() -> BertLoader.bertModel(dir), dir.resolve("config.json").toString(), "num_labels");
    }

    @Test
    void twoKeysForOneParameterAreRefusedNamingBoth() throws Exception {
        try (var m = new BertForSequenceClassification(TINY)) {
            Tensor other = Tensor.zeros(50, 16);
            writeCheckpoint(dir, m, Map.of("embeddings.word_embeddings.weight", other));
        }
        refusedNaming(() -> BertLoader.bertModel(dir), "bert.embeddings.word_embeddings.weight", "'embeddings.word_embeddings.weight'");
        // The same two keys in the other file order.
        try (var m = new BertForSequenceClassification(TINY)) {
            Map<String, Tensor> state = new LinkedHashMap<>();
            state.put("embeddings.word_embeddings.weight", Tensor.zeros(50, 16));
            m.stateDict().forEach((k, t) -> state.put(k, t.contiguous()));
            Safetensors.write(dir.resolve("model.safetensors"), state);
        }
        refusedNaming(() -> BertLoader.bertModel(dir), "bert.embeddings.word_embeddings.weight", "'embeddings.word_embeddings.weight'");
    }

    @Test
    void theCheckedShapesAreTheModelsOwn() {
        // The shapes the loader expects from a config are those of the model that config builds.
        BertConfig c = new BertConfig(50, 16, 3, 4, 24, "gelu", 0.1, 0.1, 20, 3, 1e-12, 0, java.util.List.of(), 5, null);
        for (boolean pooler : new boolean[] {false, true}) {
            try (BertModel m = new BertModel(c, pooler)) {
                assertShapes(m, BertLoader.expectedShapes(c, pooler, false));
            }
        }
        try (var m = new BertForSequenceClassification(c)) {
            assertShapes(m, BertLoader.expectedShapes(c, true, true));
        }
    }

    private static void assertShapes(Module m, Map<String, long[]> expected) {
        Map<String, Tensor> state = m.stateDict();
        assertEquals(state.keySet(), expected.keySet());
        state.forEach((k, t) -> assertArrayEquals(t.shape(), expected.get(k), k + " " + Arrays.toString(expected.get(k))));
    }

    @Test
    void aMatchingCheckpointStillLoadsAfterRefusals() throws Exception {
        try (BertModel m = new BertModel(TINY, true)) {
            writeCheckpoint(dir, m, Map.of(), "vocab_size", "2000000000", "hidden_size", "1024");
            refusedNaming(() -> BertLoader.bertModel(dir), "hidden_size");
            writeCheckpoint(dir, m, Map.of());
            m.eval();
            Tensor ids = Tensor.of(new long[] {1, 5, 9, 2}, 1, 4);
            try (BertModel back = BertLoader.bertModel(dir)) {
                assertTrue(back.forward(ids).equal(m.forward(ids)));
            }
        }
    }
}
