package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Functional;
import dev.lora4j.optim.AdamW;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA on the BERT encoder, PEFT's way: PEFT's default targets for BERT (query, value), PEFT's
 * adapter keys and config types, merged == unmerged, mixed batches on [batch, seq, hidden]
 * activations (every row equal to the row run alone with its adapter), DyLoRA, and a training
 * step that moves only the adapters.
 */
@ExtendWith(ScopePerTest.class)
class BertLoraTest {

    static final BertConfig TINY = BertModelTest.TINY;
    static final Tensor IDS = Tensor.of(new long[] {2, 8, 13, 0, 0, 4, 6, 7, 9, 11, 3, 3, 5, 0, 0}, 3, 5).keep();
    static final Tensor MASK = Tensor.of(new long[] {1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 3, 5).keep();

    @TempDir
    Path dir;

    static void randomizeAll(BertModel m) {
        try (var ng = Torch.noGrad(); var s = TensorScope.open()) {
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                for (String n : l.adapterNames()) {
                    l.loraA(n).copy_(Tensor.randn(l.loraA(n).shape()).mul(0.3));
                    l.loraB(n).copy_(Tensor.randn(l.loraB(n).shape()).mul(0.3));
                }
            }
        }
    }

    @Test
    void pefts_default_targets_wrap_query_and_value_of_every_layer() {
        try (BertModel m = new BertModel(TINY, false)) {
            var report = Lora.wrap(m, LoraConfig.of(8, 16).withTargetModules("query", "value"));
            assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
                    "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"), report.wrapped());
            Lora.markOnlyLoraAsTrainable(m, LoraConfig.Bias.NONE);
            assertEquals(4 * (8 * 16 + 16 * 8), m.trainableParameterCount());
            // B = 0 at init: the wrapped model computes what the base did.
            m.eval();
            Tensor wrapped = m.forward(IDS, MASK, null);
            try (var off = Lora.disableAdapters(m)) {
                assertTrue(m.forward(IDS, MASK, null).allclose(wrapped, 1e-6, 1e-6));
            }
        }
    }

    @Test
    void peftAdapterFolderHasPeftsKeysAndTypesAndLoadsBack() throws Exception {
        LoraConfig cfg = LoraConfig.of(8, 16).withTargetModules("query", "value");
        try (BertModel m = new BertModel(TINY, false); BertModel other = new BertModel(TINY, false)) {
            Lora.wrap(m, cfg);
            randomizeAll(m);
            m.eval();
            PeftAdapter.save(m, cfg, dir);
            Set<String> want = new TreeSet<>();
            for (int i = 0; i < 2; i++) {
                for (String p : List.of("query", "value")) {
                    for (String f : List.of("lora_A", "lora_B")) {
                        want.add("base_model.model.encoder.layer." + i + ".attention.self." + p + "." + f + ".weight");
                    }
                }
            }
            try (var c = Safetensors.read(dir.resolve("adapter_model.safetensors"))) {
                assertEquals(want, new TreeSet<>(c.tensors().keySet()));
                assertArrayEquals(new long[] {8, 16}, c.tensors().get("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight").shape());
                assertArrayEquals(new long[] {16, 8}, c.tensors().get("base_model.model.encoder.layer.0.attention.self.query.lora_B.weight").shape());
                assertEquals("pt", c.metadata().get("format"));
            }
            JsonNode json = new ObjectMapper().readTree(Files.readString(dir.resolve("adapter_config.json")));
            assertTrue(json.get("r").isInt());
            assertTrue(json.get("lora_alpha").isInt(), "PEFT writes lora_alpha as an int: " + json.get("lora_alpha"));
            assertTrue(json.get("lora_dropout").isNumber());
            assertTrue(json.get("init_lora_weights").isBoolean(), "PEFT writes init_lora_weights as true: " + json.get("init_lora_weights"));
            assertTrue(json.get("fan_in_fan_out").isBoolean());
            assertTrue(json.get("target_modules").isArray());
            assertEquals("LORA", json.get("peft_type").asText());

            // A fresh copy of the same base loads the folder and computes the same.
            other.loadStateDict(baseState(m), true);
            other.eval();
            PeftAdapter.load(other, dir);
            assertTrue(other.forward(IDS, MASK, null).allclose(m.forward(IDS, MASK, null), 1e-6, 1e-6));
        }
    }

    /** The base weights of a wrapped model under their original names. */
    private static java.util.Map<String, Tensor> baseState(BertModel wrapped) {
        var out = new java.util.LinkedHashMap<String, Tensor>();
        wrapped.stateDict().forEach((k, v) -> {
            if (!k.contains("lora_")) out.put(k.replace(".base_layer.", "."), v);
        });
        return out;
    }

    @Test
    void mergedEqualsUnmerged() {
        try (BertModel m = new BertModel(TINY, true)) {
            Lora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "key", "value", "dense"));
            randomizeAll(m);
            m.eval();
            Tensor unmerged = m.forward(IDS, MASK, null);
            assertFalse(baseOutput(m).allclose(unmerged, 1e-3, 1e-3), "the adapters must change the output");
            assertTrue(Lora.merge(m, true) > 0);
            assertTrue(m.forward(IDS, MASK, null).allclose(unmerged, 1e-4, 1e-5));
            Lora.unmerge(m);
            assertTrue(m.forward(IDS, MASK, null).allclose(unmerged, 1e-4, 1e-5));
        }
    }

    private static Tensor baseOutput(BertModel m) {
        try (var off = Lora.disableAdapters(m)) {
            return m.forward(IDS, MASK, null);
        }
    }

    @Test
    void mixedBatchRowsEqualEachRowAloneWithItsAdapter() {
        try (BertModel m = new BertModel(TINY, false)) {
            Lora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "value"));
            Lora.deleteAdapter(m, "default");
            Lora.addAdapter(m, "a", LoraConfig.of(4, 8).withTargetModules("query", "value"));
            Lora.addAdapter(m, "b", LoraConfig.of(2, 2).withTargetModules("value", "intermediate.dense"));
            randomizeAll(m);
            m.eval();
            String[] rows = {"b", AdapterBank.BASE, "a"};
            Tensor mixed = Lora.withRowAdapters(m, 3, () -> m.forward(IDS, MASK, null), rows);
            for (int i = 0; i < rows.length; i++) {
                if (rows[i].equals(AdapterBank.BASE)) Lora.setAdapter(m);
                else Lora.setAdapter(m, rows[i]);
                Tensor alone = m.forward(IDS.narrow(0, i, 1), MASK.narrow(0, i, 1), null);
                assertTrue(mixed.narrow(0, i, 1).allclose(alone, 1e-5, 1e-5), "row " + i + " (" + rows[i] + ")");
            }
            Lora.setAdapter(m, "a");
            assertFalse(mixed.narrow(0, 0, 1).allclose(m.forward(IDS.narrow(0, 0, 1), MASK.narrow(0, 0, 1), null), 1e-3, 1e-3),
                    "row 0 with another adapter differs: the check can fail");
            assertThrows(IllegalArgumentException.class, () -> Lora.withRowAdapters(m, 3, () -> null, "a", "b"));
        }
    }

    @Test
    void dyLoraOnTheEncoderServesEveryRankAndMergesAtIt() {
        try (BertModel m = new BertModel(TINY, false)) {
            DyLora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "value"));
            randomizeAll(m);
            m.eval();
            List<Tensor> outs = new ArrayList<>();
            for (int b = 1; b <= 4; b++) outs.add(DyLora.forward(m, IDS, b));
            assertFalse(outs.get(0).allclose(outs.get(3), 1e-3, 1e-3), "rank 1 and rank 4 differ");
            DyLora.setRank(m, 2);
            Tensor atTwo = m.forward(IDS);
            assertTrue(atTwo.allclose(outs.get(1), 1e-5, 1e-5));
            Lora.merge(m, true);
            assertTrue(m.forward(IDS).allclose(atTwo, 1e-4, 1e-5));
        }
    }

    @Test
    void modulesToSaveClassifierIsSavedWholeWithPeftsKeysAndLoadsBack() throws Exception {
        LoraConfig cfg = LoraConfig.of(8, 16).withTargetModules("query", "value");
        try (var c = new BertForSequenceClassification(TINY); var fresh = new BertForSequenceClassification(TINY)) {
            fresh.loadStateDict(c.stateDict(), true);
            Lora.wrap(c, cfg);
            try (var ng = Torch.noGrad(); var s = TensorScope.open()) {
                for (LoraLayer l : Lora.loraLayers(c).values()) l.loraB("default").copy_(Tensor.randn(l.loraB("default").shape()));
                c.child("classifier").parameter("weight").copy_(Tensor.randn(3, 16));
            }
            c.eval();
            fresh.eval();
            PeftAdapter.save(c, "default", cfg, List.of("classifier"), dir);
            try (var contents = Safetensors.read(dir.resolve("adapter_model.safetensors"))) {
                assertTrue(contents.tensors().containsKey("base_model.model.classifier.weight"));
                assertTrue(contents.tensors().containsKey("base_model.model.classifier.bias"));
                assertTrue(contents.tensors().containsKey("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
                assertEquals(4 * 2 + 2, contents.tensors().size());
            }
            JsonNode json = new ObjectMapper().readTree(Files.readString(dir.resolve("adapter_config.json")));
            assertEquals("classifier", json.get("modules_to_save").get(0).asText());
            assertFalse(fresh.forward(IDS, MASK, null).allclose(c.forward(IDS, MASK, null), 1e-3, 1e-3));
            PeftAdapter.load(fresh, dir);
            assertTrue(fresh.forward(IDS, MASK, null).allclose(c.forward(IDS, MASK, null), 1e-5, 1e-6));
            assertFalse(fresh.child("classifier").parameter("weight").requiresGrad(), "loaded for inference, as PEFT's from_pretrained");
            Lora.deleteAdapter(fresh, "default");
            PeftAdapter.load(fresh, dir, "default", true);
            assertTrue(fresh.forward(IDS, MASK, null).allclose(c.forward(IDS, MASK, null), 1e-5, 1e-6));
            assertTrue(fresh.child("classifier").parameter("weight").requiresGrad(), "modules_to_save train with is_trainable, as in PEFT");
            assertThrows(IllegalArgumentException.class, () -> PeftAdapter.save(c, "default", cfg, List.of("no_such_head"), dir));
        }
    }

    @Test
    void aTrainingStepMovesOnlyTheAdaptersAndLowersTheLoss() {
        try (var c = new BertForSequenceClassification(TINY)) {
            Lora.wrap(c, LoraConfig.of(4, 8).withTargetModules("query", "value"));
            Lora.markOnlyLoraAsTrainable(c, LoraConfig.Bias.NONE);
            c.child("classifier").requiresGrad_(true); // PEFT's modules_to_save=["classifier"], trained in place
            c.train();
            Tensor labels = Tensor.of(new long[] {0, 2, 1}, 3);
            Tensor frozen = c.bert().module("encoder.layer.0.attention.self.key").parameter("weight").clone();
            try (var opt = new AdamW(c.trainableParameters(), 1e-2)) {
                double first = 0, last = 0;
                for (int step = 0; step < 15; step++) {
                    try (var s = TensorScope.open()) {
                        opt.zeroGrad();
                        Tensor loss = Functional.crossEntropy(c.forward(IDS, MASK, null), labels);
                        loss.backward();
                        opt.step();
                        if (step == 0) first = loss.item();
                        last = loss.item();
                    }
                }
                assertTrue(last < first, "loss " + first + " -> " + last);
            }
            assertTrue(c.bert().module("encoder.layer.0.attention.self.key").parameter("weight").equal(frozen));
        }
    }
}
