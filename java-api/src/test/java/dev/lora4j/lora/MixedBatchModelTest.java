package dev.lora4j.lora;

import static dev.lora4j.lora.NamedAdaptersTest.randomize;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** Lora.forward with one adapter per row: equal to running each row alone with its adapter. */
class MixedBatchModelTest {

    private static final String[] ROWS = {"b", AdapterBank.BASE, "a", "c", "b", "a", AdapterBank.BASE, "c", "c"};

    /** An MLP whose two Linear layers hold adapters a, b (both layers) and c (last layer only). */
    private static Sequential model() {
        Sequential m = new Sequential(new Linear(6, 9), Activation.relu(), new Linear(9, 4));
        Lora.wrap(m, LoraConfig.of(2, 4));
        Lora.deleteAdapter(m, "default");
        Lora.addAdapter(m, "a", LoraConfig.of(1, 2));
        Lora.addAdapter(m, "b", LoraConfig.of(3, 1).withRslora(true));
        Lora.addAdapter(m, "c", LoraConfig.of(2, 2).withTargetModules("2"));
        for (LoraLayer l : Lora.loraLayers(m).values()) for (String n : l.adapterNames()) randomize(l, n);
        return m;
    }

    /** Row i alone, through the model with only its adapter active (none for __base__). */
    private static Tensor rowAlone(Module m, Tensor x, int i, String name) {
        if (name.equals(AdapterBank.BASE)) Lora.setAdapter(m);
        else Lora.setAdapter(m, name);
        return m.forward(x.narrow(0, i, 1));
    }

    private static void assertRowsMatch(Module m, Tensor x, Tensor mixed) {
        for (int i = 0; i < ROWS.length; i++) {
            Tensor alone = rowAlone(m, x, i, ROWS[i]);
            assertTrue(mixed.narrow(0, i, 1).allclose(alone, 1e-5, 1e-5), "row " + i + " (" + ROWS[i] + ")");
        }
    }

    @Test
    void inferenceUsesTheFusedBankAndMatchesEachRowAlone() {
        Torch.manualSeed(31);
        try (Sequential m = model(); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            m.eval();
            Tensor x = Tensor.randn(ROWS.length, 6);
            Tensor mixed = Lora.forward(m, x, ROWS);
            assertRowsMatch(m, x, mixed);
            // The bank sees in-place changes of the factors (version counters), as after training.
            LoraLayer last = (LoraLayer) m.get(2);
            last.loraB("c").mul_(2.0);
            Tensor again = Lora.forward(m, x, ROWS);
            assertFalse(again.allclose(mixed, 1e-5, 1e-5), "a changed adapter changes the answer");
            assertRowsMatch(m, x, again);
        }
    }

    @Test
    void withGradientsEachAdapterRunsOnItsRowsAndBackpropagates() {
        Torch.manualSeed(32);
        try (Sequential m = model(); TensorScope s = TensorScope.open()) {
            Lora.setAdapter(m, "a", "b", "c"); // all trainable
            Tensor x = Tensor.randn(ROWS.length, 6);
            Tensor mixed = Lora.forward(m, x, ROWS);
            mixed.pow(2).sum().backward();
            LoraLayer first = (LoraLayer) m.get(0);
            assertNotNull(first.loraB("a").grad(), "gradients reach the adapters of the rows");
            try (var ng = Torch.noGrad()) {
                assertRowsMatch(m, x, mixed.detach());
            }
        }
    }

    @Test
    void embeddingLayersGatherRowsPerAdapter() {
        Torch.manualSeed(33);
        try (Sequential m = new Sequential(new Embedding(20, 5)); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Lora.wrap(m, LoraConfig.of(2, 2));
            Lora.addAdapter(m, "e", LoraConfig.of(3, 3));
            LoraLayer l = (LoraLayer) m.get(0);
            randomize(l, "default");
            randomize(l, "e");
            m.eval();
            Tensor ids = Tensor.of(new long[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, 3);
            String[] rows = {"e", AdapterBank.BASE, "default"};
            Tensor mixed = Lora.forward(m, ids, rows);
            for (int i = 0; i < rows.length; i++) {
                if (rows[i].equals(AdapterBank.BASE)) Lora.setAdapter(m);
                else Lora.setAdapter(m, rows[i]);
                assertTrue(mixed.narrow(0, i, 1).allclose(m.forward(ids.narrow(0, i, 1)), 1e-5, 1e-6), "row " + i);
            }
        }
    }

    @Test
    void badNamesCountsAndMergedAdaptersAreRefused() {
        try (Sequential m = model(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(3, 6);
            var e = assertThrows(IllegalArgumentException.class, () -> Lora.forward(m, x, "a", "nope", "b"));
            assertTrue(e.getMessage().contains("nope"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Lora.forward(m, x, "a", "b"));
            assertThrows(NullPointerException.class, () -> Lora.forward(m, x, "a", null, "b"));
            Lora.merge(m, false, "a");
            assertThrows(IllegalStateException.class, () -> Lora.forward(m, x, "a", "b", "c"));
            Lora.unmerge(m);
            assertDoesNotThrow(() -> Lora.forward(m, x, "a", "b", "c").close());
        }
    }

    @Test
    void eightThreadsGetBitIdenticalMixedBatches() throws Exception {
        Torch.manualSeed(34);
        try (Sequential m = model(); TensorScope s = TensorScope.open()) {
            m.eval();
            Tensor x = Tensor.randn(ROWS.length, 6);
            float[] serial;
            try (var ng = Torch.noGrad(); Tensor y = Lora.forward(m, x, ROWS)) {
                serial = y.toFloatArray();
            }
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<Boolean>> results = new ArrayList<>();
                for (int t = 0; t < 8; t++) {
                    results.add(pool.submit(() -> {
                        for (int k = 0; k < 50; k++) {
                            try (var ng = Torch.noGrad(); Tensor y = Lora.forward(m, x, ROWS)) {
                                if (!java.util.Arrays.equals(serial, y.toFloatArray())) return false;
                            }
                        }
                        return true;
                    }));
                }
                for (Future<Boolean> f : results) assertTrue(f.get());
            } finally {
                pool.shutdown();
            }
        }
    }

    /**
     * A mixed batch refused after the base layer ran (a merged layer; a model that reshapes its
     * input so the layer sees another number of rows) frees that base output: it used to stay
     * unowned until the safety net collected it (1,000 failed calls left 2 MB behind).
     */
    @Test
    void aRefusedMixedBatchLeaksNothing() {
        try (LoraLinear merged = new LoraLinear(new Linear(64, 64), LoraConfig.of(4)); Tensor x = Tensor.randn(8, 64)) {
            merged.eval();
            merged.merge();
            long before = Torch.unownedTensorBytes();
            for (int i = 0; i < 50; i++) {
                assertThrows(IllegalStateException.class, () -> Lora.forward(merged, x, "default", "default", "default", "default",
                        "default", "default", "default", "default"));
            }
            assertEquals(before, Torch.unownedTensorBytes(), "bytes left unowned by the refused calls");
            merged.unmerge();
            Module flat = new Module() {
                {
                    registerModule("l", merged);
                }

                @Override
                public Tensor forward(Tensor in) {
                    try (Tensor f = in.reshape(-1, 64)) {
                        return merged.forward(f);
                    }
                }
            };
            try (Tensor x3 = Tensor.randn(2, 4, 64)) {
                for (int i = 0; i < 50; i++) {
                    assertThrows(IllegalArgumentException.class, () -> Lora.forward(flat, x3, "default", AdapterBank.BASE));
                }
            }
            assertEquals(before, Torch.unownedTensorBytes(), "bytes left unowned by the refused calls");
        }
    }
}
