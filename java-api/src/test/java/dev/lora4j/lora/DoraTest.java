package dev.lora4j.lora;

import static dev.lora4j.lora.BreadthReference.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DoRA on LoraLinear against torch's evaluation of PEFT's DoraLinearLayer formulas
 * ({@link BreadthReference}): weight norm, forward, the magnitude's gradient with the norm
 * detached, merge / unmerge, fan_in_fan_out, mixed batches and PEFT's file keys.
 */
class DoraTest {

    private static final LoraConfig DORA = LoraConfig.of(2, 3).withUseDora(true);

    @TempDir
    Path dir;

    /** The script's layer: W = fixed(4, 6, 0), A = fixed(2, 6, 1), B = fixed(4, 2, 2)/2, m = ‖W + sBA‖·(1 + 0.1·k). */
    private static LoraLinear scriptLayer(Module base, boolean transposed) {
        LoraLinear l = new LoraLinear(base, transposed ? DORA.withFanInFanOut(true) : DORA);
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor w = fixed(4, 6, 0);
            base.parameter("weight").copy_(transposed ? w.t() : w);
            l.loraA("default").copy_(fixed(2, 6, 1));
            l.loraB("default").copy_(fixed(4, 2, 2).mul(0.5));
            l.dora("default").weight().copy_(of(DORA_NORM, 4).mul(Tensor.of(new float[] {1f, 1.1f, 1.2f, 1.3f}, 4)));
        }
        return l;
    }

    private static Tensor adapterPart(LoraLinear l, Tensor x) {
        return l.forward(x).sub(l.baseLayer().forward(x));
    }

    @Test
    void aNewAdapterKeepsTheBaseOutputAndItsMagnitudeIsTheRowNorm() {
        Torch.manualSeed(1);
        try (LoraLinear l = new LoraLinear(new Linear(6, 4), DORA); TensorScope s = TensorScope.open()) {
            Tensor w = l.baseLayer().parameter("weight");
            assertTrue(l.dora("default").weight().allclose(w.mul(w).sum(1).sqrt(), 1e-6, 1e-6), "m = ‖W‖ per output row");
            Tensor x = fixed(3, 6, 3);
            assertTrue(l.forward(x).allclose(l.baseLayer().forward(x), 1e-6, 1e-6));
            assertTrue(l.dora("default").weight().requiresGrad(), "the magnitude trains with the active adapter");
        }
    }

    @Test
    void weightNormAndForwardMatchTorch() {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            Tensor norm = DoraLinearLayer.weightNorm(l.baseLayer().parameter("weight"), l.loraA(), l.loraB(), l.scaling());
            assertTrue(norm.allclose(of(DORA_NORM, 4), 1e-5, 1e-5), "low-rank norm equals ‖W + sBA‖: " + norm);
            l.eval();
            assertTrue(adapterPart(l, fixed(3, 6, 3)).allclose(of(DORA_DELTA, 3, 4), 1e-5, 1e-5));
        }
    }

    /** The DoRA output from the dense formula: x·W'ᵀ + bias with W' = m ⊙ (W + sBA)/‖W + sBA‖. */
    private static Tensor dense(LoraLinear l, Tensor x) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor v = l.baseLayer().parameter("weight").add(l.loraB("default").matmul(l.loraA("default")), l.scaling("default"));
            Tensor w = v.mul(l.dora("default").weight().div(v.mul(v).sum(1).sqrt()).unsqueeze(1));
            return Functional.linear(x, w, l.baseLayer().parameter("bias")).keep();
        }
    }

    /**
     * On a bfloat16 base the magnitude takes the factors' dtype (float32, as PEFT's
     * autocast_adapter_dtype casts every adapter parameter); forward and a safe merge give the
     * float32 result of the dense formula, rounded once to bfloat16.
     */
    @Test
    void onABfloat16BaseTheMagnitudeIsFloat32AndOutputsRoundOnce() {
        Torch.manualSeed(4);
        Linear base = new Linear(6, 4);
        base.to(DType.BFLOAT16);
        try (LoraLinear l = new LoraLinear(base, DORA); TensorScope s = TensorScope.open()) {
            assertEquals(DType.FLOAT32, l.loraA().dtype());
            assertEquals(DType.FLOAT32, l.dora("default").weight().dtype(), "the magnitude follows the factors");
            NamedAdaptersTest.randomize(l, "default");
            try (var ng = Torch.noGrad()) {
                l.dora("default").weight().mul_(1.3);
            }
            l.eval();
            Tensor x = fixed(3, 6, 3).to(DType.BFLOAT16);
            Tensor want;
            try (var ng = Torch.noGrad()) {
                Tensor w = base.parameter("weight").to(DType.FLOAT32);
                Tensor v = w.add(l.loraB("default").matmul(l.loraA("default")), l.scaling("default"));
                Tensor merged = v.mul(l.dora("default").weight().div(v.mul(v).sum(1).sqrt()).unsqueeze(1));
                want = Functional.linear(x.to(DType.FLOAT32), merged, base.parameter("bias").to(DType.FLOAT32));
                Tensor y = l.forward(x);
                assertEquals(DType.BFLOAT16, y.dtype());
                assertTrue(y.to(DType.FLOAT32).allclose(want, 1e-2, 1e-2), "forward: " + y + " vs " + want);
            }
            assertTrue(l.merge(true));
            try (var ng = Torch.noGrad()) {
                assertTrue(l.forward(x).to(DType.FLOAT32).allclose(want, 3e-2, 3e-2), "merged forward");
            }
        }
    }

    @Test
    void theCachedNormFollowsChangesOfTheFactorsAndTheWeight() {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            l.eval();
            Tensor x = fixed(3, 6, 3);
            try (var ng = Torch.noGrad()) {
                assertTrue(l.forward(x).allclose(dense(l, x), 1e-5, 1e-5));
                l.loraB().copy_(fixed(4, 2, 8));
                assertTrue(l.forward(x).allclose(dense(l, x), 1e-5, 1e-5), "after B changed");
                l.loraA().mul_(-0.5);
                assertTrue(l.forward(x).allclose(dense(l, x), 1e-5, 1e-5), "after A changed");
                l.baseLayer().parameter("weight").add_(Tensor.ones(4, 6), 0.3);
                assertTrue(l.forward(x).allclose(dense(l, x), 1e-5, 1e-5), "after W changed");
            }
        }
    }

    @Test
    void withSeveralActiveAdaptersEachAddsItsOwnUpdate() {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            l.addAdapter("plain", LoraConfig.of(2, 5));
            NamedAdaptersTest.randomize(l, "plain");
            l.eval();
            Tensor x = fixed(3, 6, 3);
            try (var ng = Torch.noGrad()) {
                Tensor want = dense(l, x).add(l.loraForward(x, "plain"));
                l.setActiveAdapters("default", "plain");
                assertTrue(l.forward(x).allclose(want, 1e-5, 1e-5), "DoRA first (reuses the base output)");
                l.setActiveAdapters("plain", "default");
                assertTrue(l.forward(x).allclose(want, 1e-5, 1e-5), "DoRA second (computes x·Wᵀ itself)");
                l.merge(false, "plain");
                assertTrue(l.forward(x).allclose(dense(l, x), 1e-5, 1e-5), "plain merged first: DoRA over W + ΔW_plain");
            }
        }
    }

    @Test
    void concurrentEvalForwardsShareTheKeptNorm() throws Exception {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            l.eval();
            Tensor x = fixed(3, 6, 3);
            Tensor want = dense(l, x);
            float[] expected = want.toFloatArray();
            var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
            try {
                List<java.util.concurrent.Future<Boolean>> runs = new java.util.ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    runs.add(pool.submit(() -> {
                        boolean ok = true;
                        for (int i = 0; i < 50; i++) {
                            try (var ng = Torch.noGrad(); TensorScope ts = TensorScope.open()) {
                                float[] got = l.forward(x).toFloatArray();
                                for (int k = 0; k < got.length; k++) ok &= Math.abs(got[k] - expected[k]) < 1e-5;
                            }
                        }
                        return ok;
                    }));
                }
                for (var r : runs) assertTrue(r.get(), "every thread sees the right output");
            } finally {
                pool.shutdown();
            }
        }
    }

    @Test
    void magnitudeGradientTreatsTheNormAsConstant() {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            l.train();
            l.forward(fixed(3, 6, 3)).sum().backward();
            assertTrue(l.dora("default").weight().grad().allclose(of(DORA_GRAD_M, 4), 1e-5, 1e-5), "∂Σy/∂m with ‖·‖ detached");
            assertNotNull(l.loraA().grad(), "A trains");
            assertNotNull(l.loraB().grad(), "B trains");
        }
    }

    @Test
    void mergeWritesTorchsWeightAndUnmergeRestoresIt() {
        for (boolean transposed : new boolean[] {false, true}) {
            Module base = transposed ? new LoraLayerTest.TransposedLinear(6, 4) : new Linear(6, 4);
            try (LoraLinear l = scriptLayer(base, transposed); TensorScope s = TensorScope.open()) {
                l.eval();
                Tensor x = fixed(3, 6, 3);
                Tensor before = l.forward(x);
                assertTrue(adapterPart(l, x).allclose(of(DORA_DELTA, 3, 4), 1e-5, 1e-5), "forward, fan_in_fan_out=" + transposed);
                Tensor w0 = base.parameter("weight").clone();
                assertTrue(l.dora("default").weight().requiresGrad());
                assertTrue(l.merge(true));
                assertFalse(l.dora("default").weight().requiresGrad(), "a merged magnitude is frozen (unmerge uses it)");
                Tensor merged = transposed ? base.parameter("weight").t() : base.parameter("weight");
                assertTrue(merged.allclose(of(DORA_MERGED, 4, 6), 1e-5, 1e-5), "W' = m ⊙ (W + ΔW)/‖W + ΔW‖, fan_in_fan_out=" + transposed);
                assertTrue(l.forward(x).allclose(before, 1e-5, 1e-5), "merged forward = unmerged forward");
                assertFalse(l.merge(), "a second merge is a no-op");
                assertTrue(l.unmerge());
                assertTrue(l.dora("default").weight().requiresGrad(), "trainable again after unmerge");
                assertTrue(base.parameter("weight").allclose(w0, 1e-5, 1e-6), "unmerge restores W, fan_in_fan_out=" + transposed);
                assertTrue(l.forward(x).allclose(before, 1e-5, 1e-5));
            }
        }
    }

    @Test
    void safeMergeRefusesANonFiniteResult() {
        try (LoraLinear l = scriptLayer(new Linear(6, 4), false); TensorScope s = TensorScope.open()) {
            try (var ng = Torch.noGrad()) {
                l.dora("default").weight().fill_(Double.POSITIVE_INFINITY);
            }
            Tensor w0 = l.baseLayer().parameter("weight").clone();
            assertThrows(IllegalStateException.class, () -> l.merge(true));
            assertTrue(l.baseLayer().parameter("weight").equal(w0), "the weight is untouched");
            assertFalse(l.isMerged());
        }
    }

    @Test
    void mixedBatchesRunDoraRowsExactly() {
        try (Sequential m = new Sequential(new Linear(6, 4)); TensorScope s = TensorScope.open()) {
            Module base = m.get(0);
            Lora.wrap(m, DORA);
            LoraLinear l = (LoraLinear) m.get(0);
            try (var ng = Torch.noGrad()) {
                base.parameter("weight").copy_(fixed(4, 6, 0));
                l.loraA("default").copy_(fixed(2, 6, 1));
                l.loraB("default").copy_(fixed(4, 2, 2).mul(0.5));
                l.dora("default").weight().mul_(1.1);
            }
            Lora.addAdapter(m, "plain", LoraConfig.of(2, 2));
            NamedAdaptersTest.randomize(l, "plain");
            m.eval();
            Tensor x = fixed(3, 6, 3);
            Tensor mixed;
            try (var ng = Torch.noGrad()) {
                mixed = Lora.forward(m, x, "default", AdapterBank.BASE, "plain");
            }
            Tensor dora = m.forward(x);
            Lora.setAdapter(m, "plain");
            Tensor plain = m.forward(x);
            Tensor none = base.forward(x);
            assertTrue(mixed.narrow(0, 0, 1).allclose(dora.narrow(0, 0, 1), 1e-5, 1e-5), "row 0: DoRA");
            assertTrue(mixed.narrow(0, 1, 1).allclose(none.narrow(0, 1, 1), 1e-5, 1e-5), "row 1: base");
            assertTrue(mixed.narrow(0, 2, 1).allclose(plain.narrow(0, 2, 1), 1e-5, 1e-5), "row 2: plain LoRA");
            assertFalse(dora.narrow(0, 0, 1).allclose(none.narrow(0, 0, 1), 1e-3, 1e-3), "the DoRA adapter changes the output");
            Lora.setAdapter(m, "default");
            assertThrows(IllegalArgumentException.class, () -> AdapterBank.of("d", l), "a bank would drop the magnitude");
        }
    }

    @Test
    void peftFilesHoldTheMagnitudeUnderPeftsKey() throws Exception {
        try (Sequential a = new Sequential(new Linear(6, 4)); Sequential b = new Sequential(new Linear(6, 4));
             TensorScope s = TensorScope.open()) {
            try (var ng = Torch.noGrad()) {
                b.get(0).parameter("weight").copy_(a.get(0).parameter("weight"));
                b.get(0).parameter("bias").copy_(a.get(0).parameter("bias"));
            }
            Lora.wrap(a, DORA);
            LoraLinear la = (LoraLinear) a.get(0);
            NamedAdaptersTest.randomize(la, "default");
            try (var ng = Torch.noGrad()) {
                la.dora("default").weight().mul_(1.5);
            }
            PeftAdapter.save(a, "default", dir);
            try (Safetensors.Contents c = Safetensors.read(dir.resolve(PeftAdapter.WEIGHTS))) {
                assertEquals(List.of("base_model.model.0.lora_A.weight", "base_model.model.0.lora_B.weight",
                        "base_model.model.0.lora_magnitude_vector"), c.tensors().keySet().stream().sorted().toList());
                assertArrayEquals(new long[] {4}, c.tensors().get("base_model.model.0.lora_magnitude_vector").shape());
            }
            assertTrue(Files.readString(dir.resolve(PeftAdapter.CONFIG)).contains("\"use_dora\" : true"));
            PeftAdapter.load(b, dir);
            LoraLinear lb = (LoraLinear) b.get(0);
            assertTrue(lb.config().useDora());
            assertTrue(lb.dora("default").weight().equal(la.dora("default").weight()));
            assertEquals(List.of("0.base_layer.weight", "0.base_layer.bias", "0.lora_A.default.weight", "0.lora_B.default.weight",
                    "0.lora_magnitude_vector.default.weight"), List.copyOf(b.namedParameters().keySet()), "PEFT's in-memory names");
            Tensor x = fixed(3, 6, 3);
            a.eval();
            b.eval();
            assertTrue(b.forward(x).allclose(a.forward(x), 1e-6, 1e-6));
        }
    }

    @Test
    void layersWithoutDoraRefuseIt() {
        try (TensorScope s = TensorScope.open()) {
            try (Embedding e = new Embedding(5, 3); Linear fc = new Linear(4, 6)) { // a refused wrapper leaves its base to the caller
                assertThrows(UnsupportedOperationException.class, () -> new LoraEmbedding(e, DORA));
                assertThrows(UnsupportedOperationException.class, () -> new MergedLoraLinear(fc, DORA, true, false));
            }
            try (Sequential m = new Sequential(new Linear(6, 4))) {
                Lora.wrap(m, DORA);
                Lora.addAdapter(m, "b", DORA);
                assertThrows(UnsupportedOperationException.class,
                        () -> Lora.addWeightedAdapter(m, List.of("default", "b"), new double[] {1, 1}, "mix", Combination.CAT, 0));
            }
        }
    }
}
