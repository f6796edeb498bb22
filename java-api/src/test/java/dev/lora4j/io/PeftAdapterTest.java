package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraConv;
import dev.lora4j.lora.LoraEmbedding;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Conv1d;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PEFT adapter folders: a folder written byte by byte from PEFT's format (no lora4j writer
 * involved) loads to the expected tensors and scales; lora4j's own folders round-trip
 * bit-exactly; bad folders are refused with the model left unchanged.
 */
class PeftAdapterTest {

    @TempDir
    Path dir;

    /** emb (Embedding 10×4), conv (Conv1d 4→4, k 3), fc1 (Linear 4→6), fc2 (Linear 6→3). */
    static final class Net extends Module {
        Net() {
            registerModule("emb", new Embedding(10, 4));
            registerModule("conv", new Conv1d(4, 4, 3));
            registerModule("fc1", new Linear(4, 6));
            registerModule("fc2", new Linear(6, 3));
        }

        @Override
        public Tensor forward(Tensor input) {
            throw new UnsupportedOperationException();
        }
    }

    private static float[] seq(int n, float start) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = start + 0.25f * i;
        return v;
    }

    /** A safetensors file laid out by hand: F32 tensors in the order given. */
    private static void writeHandmade(Path file, Map<String, long[]> shapes, Map<String, float[]> values) throws IOException {
        StringBuilder h = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        for (var e : shapes.entrySet()) {
            long n = values.get(e.getKey()).length * 4L;
            h.append(",\"").append(e.getKey()).append("\":{\"dtype\":\"F32\",\"shape\":")
                    .append(java.util.Arrays.toString(e.getValue()).replace(" ", "")).append(",\"data_offsets\":[")
                    .append(offset).append(',').append(offset + n).append("]}");
            offset += n;
        }
        h.append('}');
        byte[] header = h.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate((int) (8 + header.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header);
        for (String k : shapes.keySet()) for (float f : values.get(k)) b.putFloat(f);
        Files.write(file, b.array());
    }

    private Path handmadeFolder(String extraConfig) throws IOException {
        Path folder = Files.createDirectories(dir.resolve("peft"));
        Files.writeString(folder.resolve("adapter_config.json"), """
                {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "bias": "none",
                 "fan_in_fan_out": false, "use_rslora": false, "target_modules": ["fc1", "fc2", "emb", "conv"],
                 "rank_pattern": {"fc2": 1}, "alpha_pattern": {"fc2": 3}, "modules_to_save": null, "use_dora": false,
                 "task_type": null, "base_model_name_or_path": "hand-made", "inference_mode": true%s}
                """.formatted(extraConfig));
        var shapes = new java.util.LinkedHashMap<String, long[]>();
        var values = new java.util.LinkedHashMap<String, float[]>();
        shapes.put("base_model.model.fc1.lora_A.weight", new long[] {2, 4});
        shapes.put("base_model.model.fc1.lora_B.weight", new long[] {6, 2});
        shapes.put("base_model.model.fc2.lora_A.weight", new long[] {1, 6});
        shapes.put("base_model.model.fc2.lora_B.weight", new long[] {3, 1});
        shapes.put("base_model.model.emb.lora_embedding_A", new long[] {2, 10});
        shapes.put("base_model.model.emb.lora_embedding_B", new long[] {4, 2});
        shapes.put("base_model.model.conv.lora_A.weight", new long[] {2, 4, 3});
        shapes.put("base_model.model.conv.lora_B.weight", new long[] {4, 2, 1});
        float start = 0;
        for (var e : shapes.entrySet()) {
            int n = (int) java.util.Arrays.stream(e.getValue()).reduce(1, (x, y) -> x * y);
            values.put(e.getKey(), seq(n, start));
            start += 1;
        }
        writeHandmade(folder.resolve("adapter_model.safetensors"), shapes, values);
        return folder;
    }

    @Test
    void aHandBuiltPeftFolderLoadsToTheExpectedTensorsAndScales() throws IOException {
        try (Net net = new Net(); TensorScope s = TensorScope.open()) {
            PeftAdapter.LoadReport report = PeftAdapter.load(net, handmadeFolder(", \"peft_version\": \"0.13.0\", \"my_field\": 1"));
            assertEquals(List.of("fc1", "fc2", "emb", "conv"), report.wrapped());
            assertEquals(List.of("my_field"), report.unknownFields());
            assertTrue(report.ignoredFields().contains("peft_version"));
            LoraLinear fc1 = (LoraLinear) net.child("fc1");
            LoraLinear fc2 = (LoraLinear) net.child("fc2");
            assertEquals(2.0, fc1.scaling(), "alpha/r = 4/2");
            assertEquals(3.0, fc2.scaling(), "alpha_pattern 3 over rank_pattern 1");
            assertArrayEquals(seq(8, 0), fc1.loraA().toFloatArray());
            assertArrayEquals(seq(12, 1), fc1.loraB().toFloatArray());
            assertArrayEquals(seq(20, 4), ((LoraEmbedding) net.child("emb")).loraA().toFloatArray());
            assertArrayEquals(seq(24, 6), ((LoraConv) net.child("conv")).loraA().toFloatArray());
            assertArrayEquals(new long[] {4, 2, 1}, ((LoraConv) net.child("conv")).loraB().shape());
            // The scale really is used: fc1(x) = base(x) + 2·x·Aᵀ·Bᵀ.
            Tensor x = Tensor.randn(3, 4);
            Tensor expected = fc1.baseLayer().forward(x).add(x.matmul(fc1.loraA().t()).matmul(fc1.loraB().t()).mul(2.0));
            assertTrue(fc1.forward(x).allclose(expected, 1e-5, 1e-5));
            assertEquals(0, net.trainableParameterCount(), "loaded frozen, as PEFT's from_pretrained without is_trainable");
        }
    }

    @Test
    void rsloraScaleIsAlphaOverSqrtR() throws IOException {
        try (Net net = new Net()) {
            Path folder = handmadeFolder("");
            String cfg = Files.readString(folder.resolve("adapter_config.json")).replace("\"use_rslora\": false", "\"use_rslora\": true");
            Files.writeString(folder.resolve("adapter_config.json"), cfg);
            PeftAdapter.load(net, folder);
            assertEquals(4 / Math.sqrt(2), ((LoraLayer) net.child("fc1")).scaling(), 1e-12);
            assertEquals(3 / Math.sqrt(1), ((LoraLayer) net.child("fc2")).scaling(), 1e-12);
        }
    }

    @Test
    void lora4jFoldersRoundTripBitExactly() throws IOException {
        Torch.manualSeed(3);
        Path folder = dir.resolve("out");
        try (Net a = new Net(); Net b = new Net(); TensorScope s = TensorScope.open()) {
            b.loadStateDict(a.stateDict(), true);
            Lora.wrap(a, LoraConfig.of(2, 4).withTargetModules("fc1", "emb", "conv"));
            Lora.wrap(a, LoraConfig.of(3, 5).withTargetModules("fc2"));
            for (LoraLayer l : Lora.loraLayers(a).values()) {
                for (Tensor p : l.trainableParameters()) {
                    try (var ng = Torch.noGrad()) {
                        p.copy_(Tensor.randn(p.shape()));
                    }
                }
            }
            PeftAdapter.save(a, LoraConfig.of(2, 4), folder);
            String json = Files.readString(folder.resolve("adapter_config.json"));
            assertTrue(json.contains("\"rank_pattern\" : {\n    \"fc2\" : 3"), json);
            PeftAdapter.LoadReport r = PeftAdapter.load(b, folder);
            assertEquals(4, r.wrapped().size());
            Map<String, Tensor> sa = Lora.loraStateDict(a, LoraConfig.Bias.NONE);
            Map<String, Tensor> sb = Lora.loraStateDict(b, LoraConfig.Bias.NONE);
            assertEquals(sa.keySet(), sb.keySet());
            sa.forEach((k, t) -> assertTrue(t.equal(sb.get(k)), k));
            for (String m : List.of("fc1", "fc2", "emb", "conv")) {
                assertEquals(((LoraLayer) a.child(m)).scaling(), ((LoraLayer) b.child(m)).scaling(), m);
            }
        }
    }

    @Test
    void namedAdaptersSaveWithoutTheirNameAndLoadUnderAnother() throws IOException {
        Torch.manualSeed(4);
        try (Net a = new Net(); Net b = new Net(); TensorScope s = TensorScope.open()) {
            b.loadStateDict(a.stateDict(), true);
            Lora.wrap(a, LoraConfig.of(2, 4).withTargetModules("fc1", "emb", "conv"));
            Lora.addAdapter(a, "style", LoraConfig.of(3, 6).withTargetModules("fc1", "fc2"));
            for (LoraLayer l : Lora.loraLayers(a).values()) {
                for (String n : l.adapterNames()) {
                    try (var ng = Torch.noGrad()) {
                        l.loraA(n).copy_(Tensor.randn(l.loraA(n).shape()));
                        l.loraB(n).copy_(Tensor.randn(l.loraB(n).shape()));
                    }
                }
            }
            PeftAdapter.save(a, "style", dir.resolve("style"));
            PeftAdapter.save(a, "default", dir.resolve("default"));
            try (var c = Safetensors.read(dir.resolve("style").resolve(PeftAdapter.WEIGHTS))) {
                assertEquals(java.util.Set.of("base_model.model.fc1.lora_A.weight", "base_model.model.fc1.lora_B.weight",
                        "base_model.model.fc2.lora_A.weight", "base_model.model.fc2.lora_B.weight"), c.tensors().keySet(),
                        "PEFT's keys: no adapter name, no base_layer");
            }
            // b: the default adapter first (wraps), then "style" loaded as "s2" beside it (no second wrap).
            PeftAdapter.load(b, dir.resolve("default"));
            PeftAdapter.LoadReport r = PeftAdapter.load(b, dir.resolve("style"), "s2");
            assertEquals(List.of("fc1", "fc2"), r.wrapped());
            assertEquals(List.of("default", "s2"), Lora.adapterNames(b));
            assertEquals(List.of("default"), Lora.activeAdapters(b), "a loaded second adapter is not active");
            LoraLayer fa = (LoraLayer) a.child("fc1");
            LoraLayer fb = (LoraLayer) b.child("fc1");
            assertTrue(fa.loraA("style").equal(fb.loraA("s2")));
            assertTrue(fa.loraB("style").equal(fb.loraB("s2")));
            assertTrue(fa.loraB("default").equal(fb.loraB("default")));
            assertEquals(fa.scaling("style"), fb.scaling("s2"));
            assertThrows(IllegalArgumentException.class, () -> PeftAdapter.load(b, dir.resolve("style"), "s2"), "name taken");
            assertThrows(IllegalArgumentException.class, () -> PeftAdapter.save(a, "nope", dir.resolve("x")));
        }
    }

    @Test
    void badFoldersAreRefusedAndTheModelIsLeftUnchanged() throws IOException {
        Path folder = handmadeFolder("");
        Path cfg = folder.resolve("adapter_config.json");
        String good = Files.readString(cfg);
        try (Net net = new Net()) {
            Files.writeString(cfg, good.replace("\"use_dora\": false", "\"use_dora\": true"));
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage().contains("use_dora"));
            Files.writeString(cfg, good.replace("\"modules_to_save\": null", "\"modules_to_save\": [\"classifier\"]"));
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage().contains("modules_to_save"));
            Files.writeString(cfg, good.replace("\"rank_pattern\": {\"fc2\": 1}", "\"rank_pattern\": {}"));
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage().contains("rank 1 but the config says 2"));
            Files.writeString(cfg, good.replace("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\""));
            assertThrows(IOException.class, () -> PeftAdapter.load(net, folder));
            Files.writeString(cfg, "{not json");
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage().contains("bad JSON"));
            assertTrue(net.children().values().stream().noneMatch(m -> m instanceof LoraLayer), "nothing was wrapped");
        }
        try (Module other = new Linear(4, 6)) {
            Files.writeString(cfg, good);
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(other, folder)).getMessage().contains("no module"));
        }
        try (Net net = new Net()) {
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.load(net, dir.resolve("missing")))
                    .getMessage().contains("adapter_config.json"));
        }
    }

    /**
     * A folder's keys must be what its own config selects, as PEFT injects layers by
     * {@code target_modules} / {@code exclude_modules} (a list: the name or a ".name" suffix; a
     * string: a regular expression over the whole path) and never loads factors of other modules.
     */
    @Test
    void factorsOfModulesTheConfigDoesNotSelectAreRefused() throws IOException {
        Path folder = handmadeFolder("");
        Path cfg = folder.resolve("adapter_config.json");
        String good = Files.readString(cfg);
        String all = "\"target_modules\": [\"fc1\", \"fc2\", \"emb\", \"conv\"]";
        try (Net net = new Net()) {
            Files.writeString(cfg, good.replace(all, "\"target_modules\": [\"fc1\", \"emb\", \"conv\"]"));
            String m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
            assertTrue(m.contains("'fc2'") && m.contains("target_modules"), m);
            Files.writeString(cfg, good.replace(all, all + ", \"exclude_modules\": [\"fc2\"]"));
            m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
            assertTrue(m.contains("'fc2'") && m.contains("exclude_modules"), m);
            Files.writeString(cfg, good.replace(all, "\"target_modules\": \"fc[0-9]|emb\""));  // a regex: conv is not selected
            m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
            assertTrue(m.contains("'conv'") && m.contains("target_modules"), m);
            Files.writeString(cfg, good.replace(all, "\"target_modules\": \"(fc[0-9]|emb|conv)\", \"exclude_modules\": \"e.b\""));
            m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
            assertTrue(m.contains("'emb'") && m.contains("exclude_modules"), m);
            assertTrue(net.children().values().stream().noneMatch(x -> x instanceof LoraLayer), "nothing was wrapped");
            // What the config selects loads: a regex over the whole path, and no target_modules at all.
            Files.writeString(cfg, good.replace(all, "\"target_modules\": \"(fc[0-9]|emb|conv)\""));
            assertEquals(List.of("fc1", "fc2", "emb", "conv"), PeftAdapter.load(net, folder).wrapped());
        }
        // As PEFT also: the shorthand in any case, Python's named groups, a long generated alternation.
        String alternation = "(" + String.join("|", java.util.Collections.nCopies(200, "layer\\\\.[0-9]+\\\\.q_proj")) + "|fc1|fc2|emb|conv)";
        for (String targets : List.of("null", "\"ALL-LINEAR\"", "\"(?P<m>fc)[12]|emb|conv\"", "\"" + alternation + "\"")) {
            try (Net net = new Net()) {
                Files.writeString(cfg, good.replace(all, "\"target_modules\": " + targets));
                assertEquals(4, PeftAdapter.load(net, folder).wrapped().size(), targets);
            }
        }
    }

    /** A folder without a single LoRA factor is no adapter (PEFT refuses target_modules that match nothing). */
    @Test
    void aFolderWithoutFactorsIsRefused() throws IOException {
        Path folder = handmadeFolder("");
        writeHandmade(folder.resolve("adapter_model.safetensors"), Map.of(), Map.of());
        try (Net net = new Net()) {
            String m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
            assertTrue(m.contains("no LoRA factor"), m);
            m = assertThrows(IOException.class, () -> PeftAdapter.loadShared(net, folder, "t", 0)).getMessage();
            assertTrue(m.contains("no LoRA factor"), m);
            assertEquals(List.of(), Lora.adapterNames(net));
        }
    }

    /**
     * {@code modules_to_save} names modules whose parameters are saved whole; a LoRA factor is
     * never one of those. A name that selects a module holding LoRA factors ("fc1", or a parent of
     * it) used to take the factors as whole-module tensors on a shared load (the adapter then
     * wrapped nothing, and its factors were silently dropped): refused on both loads.
     */
    @Test
    void modulesToSaveNeverTakesLoraFactors() throws IOException {
        Path folder = handmadeFolder("");
        Path cfg = folder.resolve("adapter_config.json");
        String good = Files.readString(cfg);
        for (String saved : List.of("fc1", "emb")) {
            Files.writeString(cfg, good.replace("\"modules_to_save\": null", "\"modules_to_save\": [\"" + saved + "\"]"));
            try (Net net = new Net()) {
                String m = assertThrows(IOException.class, () -> PeftAdapter.loadShared(net, folder, "t", 0)).getMessage();
                assertTrue(m.contains("modules_to_save") && m.contains("LoRA factor"), m);
                m = assertThrows(IOException.class, () -> PeftAdapter.load(net, folder)).getMessage();
                assertTrue(m.contains("modules_to_save") && m.contains("LoRA factor"), m);
                assertEquals(List.of(), Lora.adapterNames(net));
            }
        }
    }
}
