package dev.lora4j.lora;

import static dev.lora4j.lora.BreadthReference.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PiSSA and OLoRA against torch's evaluation of PEFT's pissa_init / olora_init
 * ({@link BreadthReference}): factors, the residual base weight, and an unchanged output at step 0.
 */
class InitSvdTest {

    private static final LoraConfig BASE = LoraConfig.of(2, 4);

    @TempDir
    Path dir;

    private static LoraLinear layer(Module base, LoraConfig config, boolean transposed) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor w = fixed(5, 4, 0.5);
            base.parameter("weight").copy_(transposed ? w.t() : w);
        }
        return new LoraLinear(base, transposed ? config.withFanInFanOut(true) : config);
    }

    private static void check(LoraConfig config, double[] a, double[] b, double[] residual) {
        for (boolean transposed : new boolean[] {false, true}) {
            Module base = transposed ? new LoraLayerTest.TransposedLinear(4, 5) : new Linear(4, 5);
            try (TensorScope s = TensorScope.open(); Module copy = transposed ? new LoraLayerTest.TransposedLinear(4, 5) : new Linear(4, 5)) {
                try (var ng = Torch.noGrad()) {
                    Tensor w = fixed(5, 4, 0.5);
                    copy.parameter("weight").copy_(transposed ? w.t() : w);
                    copy.parameter("bias").copy_(base.parameter("bias"));
                }
                Tensor x = fixed(3, 4, 9);
                Tensor before = copy.forward(x);
                try (LoraLinear l = layer(base, config, transposed)) {
                    String what = config.initLoraWeights() + ", fan_in_fan_out=" + transposed;
                    assertTrue(l.loraA().allclose(of(a, 2, 4), 1e-5, 1e-5), what + ": A " + l.loraA());
                    assertTrue(l.loraB().allclose(of(b, 5, 2), 1e-5, 1e-5), what + ": B");
                    Tensor w = transposed ? base.parameter("weight").t() : base.parameter("weight");
                    assertTrue(w.allclose(of(residual, 5, 4), 1e-5, 1e-5), what + ": residual W − sBA");
                    assertTrue(l.forward(x).allclose(before, 1e-5, 1e-5), what + ": output unchanged at step 0");
                    assertTrue(l.merge());
                    assertTrue(w.allclose(fixed(5, 4, 0.5), 1e-5, 1e-5), what + ": merging gives W back");
                }
            }
        }
    }

    @Test
    void pissaMatchesTorch() {
        check(BASE.withInit(LoraConfig.Init.PISSA), PISSA_A, PISSA_B, PISSA_RESIDUAL);
    }

    @Test
    void oloraMatchesTorch() {
        check(BASE.withInit(LoraConfig.Init.OLORA), OLORA_A, OLORA_B, OLORA_RESIDUAL);
    }

    @Test
    void pissaNiterApproximatesTheTopSubspaceAndKeepsTheOutput() {
        Torch.manualSeed(3);
        try (TensorScope s = TensorScope.open()) {
            // A spectrum with a gap after rank 2, so a few power iterations find the top subspace.
            Tensor u = Linalg.qr(Tensor.randn(8, 8)).q();
            Tensor v = Linalg.qr(Tensor.randn(6, 6)).q();
            Tensor sv = Tensor.of(new float[] {9f, 6f, 0.3f, 0.2f, 0.1f, 0.05f}, 6);
            Tensor w = u.narrow(1, 0, 6).mul(sv.unsqueeze(0)).matmul(v.t());
            Linear exactBase = new Linear(6, 8);
            Linear approxBase = new Linear(6, 8);
            try (var ng = Torch.noGrad()) {
                exactBase.weight().copy_(w);
                approxBase.weight().copy_(w);
                approxBase.bias().copy_(exactBase.bias());
            }
            Tensor x = Tensor.randn(4, 6);
            Tensor before = exactBase.forward(x);
            try (LoraLinear exact = new LoraLinear(exactBase, BASE.withInit(LoraConfig.Init.PISSA));
                 LoraLinear approx = new LoraLinear(approxBase, BASE.withPissaNiter(4))) {
                assertEquals("pissa_niter_4", approx.config().initLoraWeights());
                assertTrue(approx.forward(x).allclose(before, 1e-5, 1e-5), "output unchanged at step 0");
                assertTrue(approx.deltaWeight().allclose(exact.deltaWeight(), 1e-3, 1e-3), "s·B·A ≈ the top-2 part of W");
                assertTrue(approxBase.weight().allclose(exactBase.weight(), 1e-3, 1e-3), "residual ≈ the exact residual");
            }
        }
    }

    @Test
    void configStringsRoundTripThroughPeftFolders() throws Exception {
        assertEquals(LoraConfig.Init.PISSA, BASE.withInitLoraWeights("pissa").init());
        assertEquals(7, BASE.withInitLoraWeights("pissa_niter_7").pissaNiter());
        assertEquals(LoraConfig.Init.OLORA, BASE.withInitLoraWeights("olora").init());
        assertThrows(IllegalArgumentException.class, () -> BASE.withInitLoraWeights("pissa_niter_x"));
        assertThrows(IllegalArgumentException.class, () -> BASE.withInitLoraWeights("pissa_niter_0"));
        assertThrows(IllegalArgumentException.class, () -> BASE.withPissaNiter(-1));
        try (Sequential m = new Sequential(new Linear(4, 5)); TensorScope s = TensorScope.open()) {
            Lora.wrap(m, BASE.withPissaNiter(2));
            PeftAdapter.save(m, "default", dir);
            assertTrue(Files.readString(dir.resolve(PeftAdapter.CONFIG)).contains("\"pissa_niter_2\""));
        }
    }

    @Test
    void loadingAPissaFolderRecomputesTheResidualAsPeftDoes() throws Exception {
        // PEFT re-runs pissa_init on load (the base becomes the residual) and then loads the file's factors,
        // so a trained PiSSA adapter saved without conversion reproduces the trained model on the original base.
        Torch.manualSeed(4);
        try (Sequential trained = new Sequential(new Linear(4, 5)); Sequential fresh = new Sequential(new Linear(4, 5));
             TensorScope s = TensorScope.open()) {
            try (var ng = Torch.noGrad()) {
                fresh.get(0).parameter("weight").copy_(trained.get(0).parameter("weight"));
                fresh.get(0).parameter("bias").copy_(trained.get(0).parameter("bias"));
            }
            Lora.wrap(trained, BASE.withInit(LoraConfig.Init.PISSA));
            LoraLayer l = (LoraLayer) trained.get(0);
            try (var ng = Torch.noGrad()) {
                l.loraA().add_(Tensor.randn(2, 4), 0.1); // "training"
            }
            PeftAdapter.save(trained, "default", dir);
            PeftAdapter.load(fresh, dir);
            Tensor x = fixed(3, 4, 2);
            assertTrue(fresh.forward(x).allclose(trained.forward(x), 1e-5, 1e-5));
            assertTrue(((LoraLayer) fresh.get(0)).baseLayer().parameter("weight").allclose(l.baseLayer().parameter("weight"), 1e-5, 1e-5));
        }
    }

    @Test
    void badUsesAreRefused() {
        try (TensorScope s = TensorScope.open()) {
            try (Embedding e = new Embedding(5, 3)) { // a refused wrapper leaves its base to the caller
                assertThrows(UnsupportedOperationException.class, () -> new LoraEmbedding(e, BASE.withInit(LoraConfig.Init.PISSA)));
            }
            Linear base = new Linear(4, 5);
            Tensor w0 = base.weight().clone();
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new LoraLinear(base, LoraConfig.of(5).withInit(LoraConfig.Init.OLORA)))
                    .getMessage().contains("r <= min(out, in) = 4"));
            assertTrue(base.weight().equal(w0), "the base weight is untouched");
            base.close();
        }
    }
}
