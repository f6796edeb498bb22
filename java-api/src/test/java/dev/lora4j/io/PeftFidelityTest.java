package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.MergeSafetyTest.Net;
import dev.lora4j.nn.HfConv1D;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where users meet PEFT: the JSON types of {@code adapter_config.json}, loading frozen unless
 * trainable, GPT-2's Conv1D and {@code fan_in_fan_out} on plain Linear layers, float64 models,
 * and ill-typed or non-finite configs and factors refused by name with the model unchanged.
 */
class PeftFidelityTest {

    @TempDir
    Path dir;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** A GPT-2-like block: c_attn (Conv1D 4→6, weight (4, 6)), square (Linear 4→4), lm_head (Linear 6→3). */
    static final class Gpt extends Module {
        Gpt() {
            registerModule("c_attn", new HfConv1D(6, 4));
            registerModule("square", new Linear(4, 4));
            registerModule("lm_head", new Linear(6, 3));
        }

        @Override
        public Tensor forward(Tensor input) {
            try (TensorScope s = TensorScope.open()) {
                return child("lm_head").forward(child("c_attn").forward(child("square").forward(input))).keep();
            }
        }
    }

    static Tensor values(long seed, double scale, long... shape) {
        Random r = new Random(seed);
        int n = (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = scale * r.nextGaussian();
        try (Tensor t = Tensor.of(v, shape)) {
            return t.to(DType.FLOAT32);
        }
    }

    /** A folder with {@code config} and the given factors (no lora4j digest), which it closes. */
    Path folder(String name, String config, Map<String, Tensor> tensors) throws IOException {
        Path f = Files.createDirectories(dir.resolve(name));
        Files.writeString(f.resolve(PeftAdapter.CONFIG), config);
        try {
            Safetensors.write(f.resolve(PeftAdapter.WEIGHTS), tensors, Map.of("format", "pt"));
        } finally {
            tensors.values().forEach(Tensor::close);
        }
        return f;
    }

    /** Rank-2 factors for fc1 and fc2 of {@link Net}. */
    static Map<String, Tensor> netFactors() {
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("base_model.model.fc1.lora_A.weight", values(1, 0.5, 2, 4));
        t.put("base_model.model.fc1.lora_B.weight", values(2, 0.5, 6, 2));
        t.put("base_model.model.fc2.lora_A.weight", values(3, 0.5, 2, 6));
        t.put("base_model.model.fc2.lora_B.weight", values(4, 0.5, 3, 2));
        return t;
    }

    static final String GOOD = """
            {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
             "use_rslora": false, "init_lora_weights": true, "target_modules": ["fc1", "fc2"] %s}""";

    // ------------------------------------------------------------------ save: PEFT's JSON types

    @Test
    void saveWritesPeftsJsonTypesAndValuesOnly() throws IOException {
        for (LoraConfig.Init init : LoraConfig.Init.values()) {
            try (TensorScope s = TensorScope.open(); Net net = new Net()) {
                Lora.wrap(net, LoraConfig.of(2, 16).withInit(init).withRslora(true));
                Path out = dir.resolve("saved-" + init);
                PeftAdapter.save(net, LoraLayer.DEFAULT_ADAPTER, out);
                JsonNode c = JSON.readTree(out.resolve(PeftAdapter.CONFIG).toFile());
                JsonNode w = c.get("init_lora_weights");
                if (init == LoraConfig.Init.GAUSSIAN) assertEquals("gaussian", w.textValue());
                else if (init == LoraConfig.Init.PISSA) assertEquals("pissa", w.textValue());
                else if (init == LoraConfig.Init.OLORA) assertEquals("olora", w.textValue());
                else assertTrue(w.isBoolean() && w.booleanValue(), init + ": init_lora_weights must be the JSON boolean true, got " + w);
                assertTrue(c.get("r").isIntegralNumber(), "r is an integer");
                assertTrue(c.get("lora_alpha").isIntegralNumber(), "an integral lora_alpha is written as PEFT's int");
                assertTrue(c.get("use_rslora").isBoolean() && c.get("use_rslora").booleanValue());
                assertTrue(c.get("fan_in_fan_out").isBoolean());
                assertTrue(c.get("lora_dropout").isNumber());
                assertTrue(c.get("target_modules").isArray());
                assertTrue(c.get("rank_pattern").isObject());
                assertEquals("LORA", c.get("peft_type").textValue());
            }
        }
    }

    @Test
    void rankPatternKeysNameOneModuleUnderPeftsSuffixMatching() {
        assertEquals("fc1", PeftAdapter.patternKey("fc1", List.of("fc1", "fc2")));
        String k = PeftAdapter.patternKey("fc1", List.of("fc1", "block.fc1"));
        assertTrue(java.util.regex.Pattern.compile("(.*\\.)?(" + k + ")").matcher("fc1").matches());
        assertFalse(java.util.regex.Pattern.compile("(.*\\.)?(" + k + ")").matcher("block.fc1").matches(), k);
        String d = PeftAdapter.patternKey("a.b", List.of("a.b", "aXb"));
        assertFalse(java.util.regex.Pattern.compile("(.*\\.)?(" + d + ")").matcher("aXb").matches(), d);
    }

    // ------------------------------------------------------------------ load: frozen unless trainable

    @Test
    void loadIsFrozenUnlessTrainable() throws IOException {
        Path f = folder("good", GOOD.formatted(""), netFactors());
        try (TensorScope s = TensorScope.open(); Net frozen = new Net(); Net trainable = new Net()) {
            PeftAdapter.load(frozen, f);
            assertEquals(0, frozen.trainableParameterCount(), "PEFT's from_pretrained loads frozen");
            assertFalse(frozen.isTraining(), "and in eval mode");
            PeftAdapter.load(trainable, f, LoraLayer.DEFAULT_ADAPTER, true);
            assertEquals(2 * 4 + 6 * 2 + 2 * 6 + 3 * 2, trainable.trainableParameterCount(), "is_trainable: the adapter trains, the base does not");
        }
    }

    // ------------------------------------------------------------------ Conv1D and fan_in_fan_out

    @Test
    void gpt2Conv1DLoadsAndMergesWhileFanInFanOutOnLinearLayersIsCorrected() throws IOException {
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("base_model.model.c_attn.lora_A.weight", values(1, 0.5, 2, 4)); // (r, in)
        t.put("base_model.model.c_attn.lora_B.weight", values(2, 0.5, 6, 2)); // (out, r)
        t.put("base_model.model.square.lora_A.weight", values(3, 0.5, 2, 4));
        t.put("base_model.model.square.lora_B.weight", values(4, 0.5, 4, 2));
        t.put("base_model.model.lm_head.lora_A.weight", values(5, 0.5, 2, 6)); // rectangular Linear: (r, in=6)
        t.put("base_model.model.lm_head.lora_B.weight", values(6, 0.5, 3, 2));
        Path f = folder("gpt", """
                {"peft_type": "LORA", "r": 2, "lora_alpha": 2, "fan_in_fan_out": true, "target_modules": ["c_attn", "square", "lm_head"]}""",
                t);
        try (TensorScope s = TensorScope.open(); Gpt gpt = new Gpt()) {
            double[] cw = ((HfConv1D) gpt.child("c_attn")).weight().toDoubleArray(); // (in 4, out 6)
            double[] sw = ((Linear) gpt.child("square")).weight().toDoubleArray(); // (out 4, in 4)
            PeftAdapter.load(gpt, f);
            assertTrue(((LoraLinear) gpt.child("c_attn")).config().fanInFanOut(), "Conv1D stores (in, out)");
            assertFalse(((LoraLinear) gpt.child("square")).config().fanInFanOut(), "reset for a Linear, as PEFT does");
            assertFalse(((LoraLinear) gpt.child("lm_head")).config().fanInFanOut());
            // Conv1D forward: x·W + b + (x·Aᵀ)·Bᵀ (scale 1), checked in plain Java.
            Tensor x = values(9, 1, 3, 4);
            LoraLinear c = (LoraLinear) gpt.child("c_attn");
            double[] y = c.forward(x).toDoubleArray();
            double[] xs = x.toDoubleArray();
            double[] a = c.loraA().toDoubleArray();
            double[] b = c.loraB().toDoubleArray();
            double[] bias = ((HfConv1D) c.baseLayer()).bias().toDoubleArray();
            for (int i = 0; i < 3; i++) {
                for (int o = 0; o < 6; o++) {
                    double v = bias[o];
                    for (int k = 0; k < 4; k++) v += xs[i * 4 + k] * cw[k * 6 + o];
                    for (int q = 0; q < 2; q++) {
                        double down = 0;
                        for (int k = 0; k < 4; k++) down += xs[i * 4 + k] * a[q * 4 + k];
                        v += down * b[o * 2 + q];
                    }
                    assertEquals(v, y[i * 6 + o], 1e-5, "Conv1D LoRA forward");
                }
            }
            Tensor before = gpt.forward(x);
            Lora.merge(gpt, true);
            assertTrue(gpt.forward(x).allclose(before, 1e-5, 1e-5), "merged = unmerged");
            // The square Linear's merged weight is W + B·A, not its transpose.
            LoraLinear sq = (LoraLinear) gpt.child("square");
            double[] merged = sq.baseLayer().parameter("weight").toDoubleArray();
            double[] sa = sq.loraA().toDoubleArray();
            double[] sb = sq.loraB().toDoubleArray();
            for (int o = 0; o < 4; o++) {
                for (int k = 0; k < 4; k++) {
                    double d = 0;
                    for (int q = 0; q < 2; q++) d += sb[o * 2 + q] * sa[q * 4 + k];
                    assertEquals(sw[o * 4 + k] + d, merged[o * 4 + k], 1e-6, "square Linear merged weight");
                }
            }
        }
    }

    @Test
    void conv1DModelsRoundTripWithFanInFanOutTrue() throws IOException {
        try (TensorScope s = TensorScope.open(); Gpt gpt = new Gpt(); Gpt other = new Gpt()) {
            other.loadStateDict(gpt.stateDict(), true);
            Lora.wrap(gpt, LoraConfig.of(2, 4).withTargetModules("c_attn", "lm_head"));
            assertTrue(((LoraLinear) gpt.child("c_attn")).config().fanInFanOut(), "surgery recognises Conv1D");
            try (var ng = Torch.noGrad()) {
                ((LoraLinear) gpt.child("c_attn")).loraB().copy_(values(7, 0.5, 6, 2));
                ((LoraLinear) gpt.child("lm_head")).loraB().copy_(values(8, 0.5, 3, 2));
            }
            Path out = dir.resolve("gpt-saved");
            PeftAdapter.save(gpt, LoraLayer.DEFAULT_ADAPTER, out);
            assertTrue(JSON.readTree(out.resolve(PeftAdapter.CONFIG).toFile()).get("fan_in_fan_out").booleanValue());
            PeftAdapter.load(other, out);
            Tensor x = values(9, 1, 2, 4);
            assertTrue(other.forward(x).equal(gpt.forward(x)), "the loaded model computes what the saved one did");
        }
    }

    // ------------------------------------------------------------------ float64 models

    @Test
    void aFloat64ModelLoadsFloat64Factors() throws IOException {
        Path f = folder("good", GOOD.formatted(""), netFactors());
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            net.to(DType.FLOAT64);
            PeftAdapter.load(net, f);
            LoraLinear fc1 = (LoraLinear) net.child("fc1");
            assertEquals(DType.FLOAT64, fc1.loraA().dtype());
            Tensor x = values(5, 1, 2, 4).to(DType.FLOAT64);
            Tensor y = net.forward(x);
            assertEquals(DType.FLOAT64, y.dtype());
            Tensor h = fc1.baseLayer().forward(x).add(x.matmul(fc1.loraA().t()).matmul(fc1.loraB().t()).mul(2.0));
            assertTrue(fc1.forward(x).allclose(h, 1e-12, 1e-12));
        }
    }

    // ------------------------------------------------------------------ refused by name, model unchanged

    /** Loading {@code f} throws an IOException naming {@code word}; the model is as before and the name is free. */
    static void assertRefused(Path f, String word) {
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            Map<String, Tensor> before = new LinkedHashMap<>();
            net.stateDict().forEach((k, v) -> before.put(k, v.clone()));
            IOException e = assertThrows(IOException.class, () -> PeftAdapter.load(net, f));
            assertTrue(e.getMessage().contains(word), "message should name " + word + ": " + e.getMessage());
            assertTrue(Lora.loraLayers(net).isEmpty(), "no layer wrapped");
            assertEquals(before.keySet(), net.stateDict().keySet());
            before.forEach((k, v) -> assertTrue(v.equal(net.stateDict().get(k)), k + " unchanged"));
            assertTrue(net.child("fc1") instanceof Linear);
        }
    }

    @Test
    void illTypedOrNonFiniteConfigValuesAreRefusedByName() throws IOException {
        String[][] cases = {
            {"\"lora_alpha\": \"sixteen\"", "lora_alpha"},
            {"\"use_rslora\": \"True\"", "use_rslora"},
            {"\"r\": 2.0", "r"},
            {"\"r\": 4.9", "r"},
            {"\"lora_alpha\": 1e999", "lora_alpha"},
            {"\"lora_dropout\": \"0.1\"", "lora_dropout"},
            {"\"fan_in_fan_out\": 1", "fan_in_fan_out"},
            {"\"bias\": true", "bias"},
            {"\"init_lora_weights\": \"loftq\"", "init_lora_weights"},
            {"\"init_lora_weights\": \"corda\"", "init_lora_weights"},
            {"\"init_lora_weights\": \"pissa_niter_0\"", "init_lora_weights"},
            {"\"init_lora_weights\": \"pissa_niter_x\"", "init_lora_weights"},
            {"\"init_lora_weights\": \"pissa_niter_99999999999\"", "init_lora_weights"},
            {"\"use_dora\": \"true\"", "use_dora"},
            {"\"use_dora\": true", "use_dora"}, // no lora_magnitude_vector in the file
            {"\"init_lora_weights\": \"bogus\"", "init_lora_weights"},
            {"\"rank_pattern\": {\"fc1\": 2.5}", "rank_pattern"},
            {"\"alpha_pattern\": {\"fc1\": \"8\"}", "alpha_pattern"},
            {"\"rank_pattern\": {\"fc1(\": 2}", "rank_pattern"},
            {"\"target_modules\": [1, 2]", "target_modules"},
        };
        int i = 0;
        for (String[] c : cases) {
            // Later fields of a JSON object override earlier ones: the bad value replaces the good one.
            String config = GOOD.formatted(", " + c[0]);
            assertRefused(folder("bad" + i++, config, netFactors()), c[1]);
        }
    }

    /**
     * A DoRA folder as PEFT writes it ({@code "use_dora": true}, {@code <module>.lora_magnitude_vector})
     * passes the strict parser, and the layer computes DoRA's {@code x·W'ᵀ + b} with
     * {@code W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖} per output row (plain-Java reference).
     */
    @Test
    void doraFoldersPassTheStrictParserAndComputeDorasWeight() throws IOException {
        Map<String, Tensor> t = netFactors();
        t.put("base_model.model.fc1.lora_magnitude_vector", values(5, 1, 6));
        t.put("base_model.model.fc2.lora_magnitude_vector", values(6, 1, 3));
        Path f = folder("dora", GOOD.formatted(", \"use_dora\": true"), t);
        try (TensorScope s = TensorScope.open(); Net net = new Net(); var ng = Torch.noGrad()) {
            double[] w = net.child("fc1").parameter("weight").toDoubleArray(); // (6, 4)
            double[] bias = net.child("fc1").parameter("bias").toDoubleArray();
            PeftAdapter.LoadReport report = PeftAdapter.load(net, f);
            assertTrue(report.config().useDora());
            LoraLinear fc1 = (LoraLinear) net.child("fc1");
            assertNotNull(fc1.dora(LoraLayer.DEFAULT_ADAPTER), "fc1 holds a DoRA adapter");
            double[] a = values(1, 0.5, 2, 4).toDoubleArray();
            double[] b = values(2, 0.5, 6, 2).toDoubleArray();
            double[] m = values(5, 1, 6).toDoubleArray();
            double scale = 4.0 / 2;
            double[] x = values(9, 1, 3, 4).toDoubleArray();
            double[] want = new double[3 * 6];
            for (int i = 0; i < 6; i++) {
                double[] row = new double[4];
                double norm2 = 0;
                for (int j = 0; j < 4; j++) {
                    row[j] = w[i * 4 + j] + scale * (b[i * 2] * a[j] + b[i * 2 + 1] * a[4 + j]);
                    norm2 += row[j] * row[j];
                }
                for (int n = 0; n < 3; n++) {
                    double y = bias[i];
                    for (int j = 0; j < 4; j++) y += x[n * 4 + j] * m[i] * row[j] / Math.sqrt(norm2);
                    want[n * 6 + i] = y;
                }
            }
            assertArrayEquals(want, fc1.forward(values(9, 1, 3, 4)).toDoubleArray(), 1e-5);
        }
    }

    /**
     * Folders made with PEFT's base-changing inits lora4j re-runs ("pissa", "pissa_niter_n",
     * "olora") pass the strict parser: the init is kept, the base weight becomes the residual.
     */
    @Test
    void pissaAndOloraFoldersPassTheStrictParser() throws IOException {
        int i = 0;
        for (String init : new String[] {"pissa", "pissa_niter_3", "olora"}) {
            Path f = folder("init" + i++, GOOD.formatted("").replace("\"init_lora_weights\": true", "\"init_lora_weights\": \"" + init + "\""), netFactors());
            try (TensorScope s = TensorScope.open(); Net net = new Net()) {
                Tensor before = net.child("fc1").parameter("weight").clone();
                PeftAdapter.LoadReport report = PeftAdapter.load(net, f);
                assertEquals(init, report.config().initLoraWeights());
                LoraLinear fc1 = (LoraLinear) net.child("fc1");
                assertEquals(init, fc1.config(LoraLayer.DEFAULT_ADAPTER).initLoraWeights());
                assertFalse(before.allclose(fc1.baseLayer().parameter("weight"), 1e-6, 1e-6), init + ": the base weight is the residual");
                assertArrayEquals(values(1, 0.5, 2, 4).toFloatArray(), fc1.loraA(LoraLayer.DEFAULT_ADAPTER).toFloatArray(), "the file's A");
            }
        }
    }

    @Test
    void nonFiniteFactorsAreRefused() throws IOException {
        Map<String, Tensor> t = netFactors();
        t.put("base_model.model.fc2.lora_B.weight", Tensor.of(new float[] {1, 2, Float.POSITIVE_INFINITY, 4, 5, 6}, 3, 2)).close();
        assertRefused(folder("inf", GOOD.formatted(""), t), "infinite");
        t = netFactors();
        t.put("base_model.model.fc2.lora_B.weight", Tensor.of(new float[] {1, 2, Float.NaN, 4, 5, 6}, 3, 2)).close();
        assertRefused(folder("nan", GOOD.formatted(""), t), "NaN");
    }

    @Test
    void twoSpellingsOfOnePathAreRefusedBeforeAnyChange() throws IOException {
        Map<String, Tensor> t = netFactors();
        t.put("base_model.model.fc2..lora_A.weight", values(3, 0.5, 2, 6));
        t.put("base_model.model.fc2..lora_B.weight", values(4, 0.5, 3, 2));
        assertRefused(folder("dup", GOOD.formatted(""), t), "empty module name");
    }

    @Test
    void keysCannotReachInsideALoraLayer() throws IOException {
        Path good = folder("good", GOOD.formatted(""), netFactors());
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("base_model.model.fc1.lora_A.default.lora_A.weight", values(5, 1e3, 2, 4));
        t.put("base_model.model.fc1.lora_A.default.lora_B.weight", values(6, 1e3, 2, 2));
        Path evil = folder("evil", GOOD.formatted(""), t);
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            PeftAdapter.load(net, good);
            LoraLinear fc1 = (LoraLinear) net.child("fc1");
            Tensor a = fc1.loraA().clone();
            IOException e = assertThrows(IOException.class, () -> PeftAdapter.load(net, evil, "evil"));
            assertTrue(e.getMessage().contains("inside the LoRA layer"), e.getMessage());
            assertTrue(fc1.loraA().equal(a), "the first adapter's A is untouched");
            assertEquals(List.of(LoraLayer.DEFAULT_ADAPTER), Lora.adapterNames(net), "the name 'evil' is free");
            assertFalse(net.namedModules().keySet().stream().anyMatch(p -> p.contains("default.")));
        }
    }

    @Test
    void aCatastrophicPatternIsRefusedInsteadOfHanging() throws IOException {
        String longName = "a".repeat(40);
        final class Long extends Module {
            Long() {
                registerModule(longName, new Linear(4, 3));
            }

            @Override
            public Tensor forward(Tensor input) {
                return child(longName).forward(input);
            }
        }
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("base_model.model." + longName + ".lora_A.weight", values(1, 0.5, 2, 4));
        t.put("base_model.model." + longName + ".lora_B.weight", values(2, 0.5, 3, 2));
        Path f = folder("redos", """
                {"peft_type": "LORA", "r": 2, "lora_alpha": 2, "rank_pattern": {"(a+)+b": 1, "(.*a){12}b": 1}}""", t);
        try (TensorScope s = TensorScope.open(); Long net = new Long()) {
            IOException e = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThrows(IOException.class, () -> PeftAdapter.load(net, f)));
            assertTrue(e.getMessage().contains("rank_pattern"), e.getMessage());
            assertTrue(Lora.loraLayers(net).isEmpty());
        }
    }

    @Test
    void patternKeysMatchModuleNameSuffixesAsPeft() throws IOException {
        Map<String, Tensor> t = netFactors();
        t.put("base_model.model.fc2.lora_A.weight", values(3, 0.5, 1, 6)).close();
        t.put("base_model.model.fc2.lora_B.weight", values(4, 0.5, 3, 1)).close();
        Path f = folder("pattern", GOOD.formatted(", \"rank_pattern\": {\"f.2\": 1}, \"alpha_pattern\": {\"fc[0-9]\": 3}"), t);
        try (TensorScope s = TensorScope.open(); Net net = new Net()) {
            PeftAdapter.load(net, f);
            assertEquals(1, ((LoraLinear) net.child("fc2")).r());
            assertEquals(3.0, ((LoraLinear) net.child("fc2")).scaling(), "alpha 3 over rank 1");
            assertEquals(1.5, ((LoraLinear) net.child("fc1")).scaling(), "alpha 3 over rank 2");
        }
    }
}
