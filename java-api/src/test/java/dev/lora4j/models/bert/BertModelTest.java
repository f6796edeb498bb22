package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.io.Safetensors;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * BertModel's Hugging Face layout (keys, config.json), loading from single and sharded
 * checkpoints with refusals that name what is wrong, and the padding mask (padded and unpadded
 * runs agree on the real tokens). The numbers themselves are checked against ONNX Runtime on
 * real weights in hf-tools' OrtParityTest.
 */
@ExtendWith(ScopePerTest.class)
class BertModelTest {

    static final BertConfig TINY = new BertConfig(50, 16, 2, 4, 32, "gelu", 0.1, 0.1, 20, 2, 1e-12, 0,
            List.of("BertModel"), 3, null);

    @TempDir
    Path dir;

    static List<String> hfKeys(int layers, boolean pooler) {
        List<String> k = new ArrayList<>(List.of("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"));
        for (int i = 0; i < layers; i++) {
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")) {
                k.add("encoder.layer." + i + "." + m + ".weight");
                k.add("encoder.layer." + i + "." + m + ".bias");
            }
        }
        if (pooler) {
            k.add("pooler.dense.weight");
            k.add("pooler.dense.bias");
        }
        return k;
    }

    @Test
    void stateDictKeysAreExactlyHuggingFaces() {
        try (BertModel m = new BertModel(TINY, true); var c = new BertForSequenceClassification(TINY)) {
            assertEquals(hfKeys(2, true), List.copyOf(m.stateDict().keySet()));
            List<String> cls = new ArrayList<>();
            hfKeys(2, true).forEach(k -> cls.add("bert." + k));
            cls.add("classifier.weight");
            cls.add("classifier.bias");
            assertEquals(cls, List.copyOf(c.stateDict().keySet()));
            assertArrayEquals(new long[] {3, 16}, c.stateDict().get("classifier.weight").shape());
        }
    }

    @Test
    void configRefusesUnknownFieldsArchitecturesAndSettingsByName() {
        String base = "\"model_type\": \"bert\", \"vocab_size\": 50, \"hidden_size\": 16, \"num_hidden_layers\": 1, "
                + "\"num_attention_heads\": 4, \"intermediate_size\": 32";
        assertEquals(16, BertConfig.fromJson("{" + base + ", \"transformers_version\": \"4.8.2\"}").hiddenSize());
        var e = assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson("{" + base + ", \"rope_theta\": 1e4}"));
        assertTrue(e.getMessage().contains("rope_theta"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson("{" + base + ", \"architectures\": [\"RobertaModel\"]}"));
        assertTrue(e.getMessage().contains("RobertaModel"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson("{\"model_type\": \"gpt2\"}"));
        assertTrue(e.getMessage().contains("gpt2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> BertConfig.fromJson("{" + base + ", \"position_embedding_type\": \"relative_key\"}"));
        assertTrue(e.getMessage().contains("relative_key"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson("{" + base + ", \"hidden_act\": \"swish\"}"));
        assertTrue(e.getMessage().contains("swish"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> BertConfig.fromJson("{" + base.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 5") + "}"));
        assertEquals(TINY, BertConfig.fromJson(TINY.toJson()));
    }

    @Test
    void savedCheckpointLoadsBackToTheSameOutputs() throws Exception {
        try (BertModel m = new BertModel(TINY, true)) {
            m.eval();
            Tensor ids = Tensor.of(new long[] {1, 5, 9, 2, 1, 7, 0, 0}, 2, 4);
            Tensor mask = Tensor.of(new long[] {1, 1, 1, 1, 1, 1, 0, 0}, 2, 4);
            Tensor before = m.forward(ids, mask, null);
            BertLoader.save(m, TINY, dir);
            try (BertModel back = BertLoader.bertModel(dir)) {
                assertFalse(back.isTraining());
                assertTrue(back.forward(ids, mask, null).equal(before));
            }
        }
    }

    @Test
    void shardedCheckpointLoadsAndBadShardsAreRefused() throws Exception {
        try (BertModel m = new BertModel(TINY, false)) {
            m.eval();
            Map<String, Tensor> state = m.stateDict();
            Map<String, Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
            StringBuilder map = new StringBuilder();
            int i = 0;
            for (var e : state.entrySet()) {
                String shard = i++ % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
                (shard.contains("00001-") ? a : b).put(e.getKey(), e.getValue().contiguous());
                map.append(map.isEmpty() ? "" : ",").append('"').append(e.getKey()).append("\": \"").append(shard).append('"');
            }
            // Old checkpoints carry the position_ids buffer: ignored, as HF does.
            a.put("embeddings.position_ids", Tensor.arange(20).unsqueeze(0));
            map.append(",\"embeddings.position_ids\": \"model-00001-of-00002.safetensors\"");
            Safetensors.write(dir.resolve("model-00001-of-00002.safetensors"), a);
            Safetensors.write(dir.resolve("model-00002-of-00002.safetensors"), b);
            Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\": {}, \"weight_map\": {" + map + "}}");
            Files.writeString(dir.resolve("config.json"), TINY.toJson());
            Tensor ids = Tensor.of(new long[] {3, 4, 5}, 1, 3);
            try (BertModel back = BertLoader.bertModel(dir)) {
                assertTrue(back.forward(ids).equal(m.forward(ids)));
            }
            // A shard name that leaves the folder is refused.
            Files.writeString(dir.resolve("model.safetensors.index.json"),
                    "{\"weight_map\": {\"embeddings.LayerNorm.bias\": \"../model-00001-of-00002.safetensors\"}}");
            var e = assertThrows(java.io.IOException.class, () -> BertLoader.bertModel(dir));
            assertTrue(e.getMessage().contains("plain file name"), e.getMessage());
            // A missing weight is named.
            Map<String, Tensor> partial = new LinkedHashMap<>(a);
            partial.remove("embeddings.LayerNorm.bias");
            partial.putAll(b);
            Files.delete(dir.resolve("model.safetensors.index.json"));
            Safetensors.write(dir.resolve("model.safetensors"), partial);
            var e2 = assertThrows(IllegalArgumentException.class, () -> BertLoader.bertModel(dir));
            assertTrue(e2.getMessage().contains("embeddings.LayerNorm.bias"), e2.getMessage());
        }
    }

    @Test
    void paddedAndUnpaddedRunsAgreeOnRealTokens() {
        for (DType dtype : new DType[] {DType.FLOAT32, DType.FLOAT64}) {
            try (BertModel m = new BertModel(TINY, false)) {
                m.to(dtype).eval();
                Tensor shortIds = Tensor.of(new long[] {2, 8, 13}, 1, 3);
                Tensor alone = m.forward(shortIds);
                Tensor ids = Tensor.of(new long[] {2, 8, 13, 0, 0, 4, 6, 7, 9, 11}, 2, 5);
                Tensor mask = Tensor.of(new long[] {1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, 2, 5);
                Tensor batch = m.forward(ids, mask, null);
                assertTrue(batch.narrow(0, 0, 1).narrow(1, 0, 3).allclose(alone, 1e-5, dtype == DType.FLOAT64 ? 1e-12 : 1e-5));
                // Without the mask the padding would change the result: the check above can fail.
                assertFalse(m.forward(ids).narrow(0, 0, 1).narrow(1, 0, 3).allclose(alone, 1e-3, 1e-3));
            }
        }
    }

    @Test
    void classificationHeadAndSentenceEmbeddings() {
        try (var c = new BertForSequenceClassification(TINY); var ng = Torch.noGrad()) {
            c.eval();
            Tensor ids = Tensor.of(new long[] {2, 8, 13, 0, 4, 6, 7, 9}, 2, 4);
            Tensor mask = Tensor.of(new long[] {1, 1, 1, 0, 1, 1, 1, 1}, 2, 4);
            assertArrayEquals(new long[] {2, 3}, c.forward(ids, mask, null).shape());
            Tensor h = c.bert().forward(ids, mask, null);
            Tensor e = SentenceEmbeddings.encode(h, mask);
            // Row 0: the mean of its 3 real tokens, normalised (plain Java).
            float[] hv = h.toFloatArray();
            double[] mean = new double[16];
            for (int t = 0; t < 3; t++) for (int d = 0; d < 16; d++) mean[d] += hv[t * 16 + d] / 3;
            double norm = Math.sqrt(java.util.Arrays.stream(mean).map(x -> x * x).sum());
            float[] ev = e.toFloatArray();
            for (int d = 0; d < 16; d++) assertEquals(mean[d] / norm, ev[d], 1e-5);
        }
    }

    @Test
    void badInputsAreRefusedWithClearMessages() {
        try (BertModel m = new BertModel(TINY, false)) {
            var e = assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(1, 3)));
            assertTrue(e.getMessage().contains("input_ids"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(DType.INT64, 1, 21)));
            assertTrue(e.getMessage().contains("max_position_embeddings"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(DType.INT64, 1, 3), Tensor.ones(1, 4), null));
            assertTrue(e.getMessage().contains("attention_mask"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> m.pool(Tensor.zeros(1, 3, 16)));
        }
    }
}
