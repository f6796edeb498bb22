package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The pool over a shared base: base-changing adapters refused with the base untouched,
 * modules_to_save kept per adapter (out of the model, counted), replacement while leased (old
 * version to its holders, new one to later acquires), and DyLoRA rank cuts against the same
 * computation done with plain tensors from the file's factors.
 */
class AdapterPoolSharingTest {

    @TempDir
    Path root;

    private Sequential model;

    private static Sequential net() {
        return new Sequential(new Linear(4, 6), new Linear(6, 3));
    }

    /** Saves a rank-{@code r} adapter on both layers (B nonzero) as {@code root/name}, with {@code config}'s init. */
    private void save(String name, LoraConfig config, List<String> modulesToSave) throws IOException {
        try (Sequential src = net()) {
            Lora.wrap(src, config);
            try (var ng = Torch.noGrad()) {
                for (LoraLayer l : Lora.loraLayers(src).values()) dev.lora4j.nn.Init.normal_(l.loraB(), 0, 1);
            }
            PeftAdapter.save(src, "default", config, modulesToSave, root.resolve(name));
        }
    }

    private final List<AdapterPool> pools = new java.util.ArrayList<>();

    @BeforeEach
    void setUp() {
        Torch.manualSeed(151);
        model = net();
        model.eval();
    }

    /** A pool over the model, closed after the test (it owns its adapters' modules_to_save tensors). */
    private AdapterPool pool() {
        AdapterPool p = new AdapterPool(model, root, 1 << 20);
        pools.add(p);
        return p;
    }

    @AfterEach
    void close() {
        pools.forEach(AdapterPool::close);
        model.close();
    }

    private double[] weight(int layer) {
        var m = model.get(layer);
        Linear l = (Linear) (m instanceof LoraLayer ll ? ll.baseLayer() : m);
        return l.weight().toDoubleArray();
    }

    @Test
    void adaptersThatRewriteTheBaseAreRefusedAndTheBaseStays() throws IOException {
        save("pissa", LoraConfig.of(2, 4).withTargetModules("0", "1").withInit(LoraConfig.Init.PISSA), List.of());
        save("olora", LoraConfig.of(2, 4).withTargetModules("0", "1").withInit(LoraConfig.Init.OLORA), List.of());
        double[] w0 = weight(0);
        double[] w1 = weight(1);
        AdapterPool pool = pool();
        for (String name : new String[] {"pissa", "olora"}) {
            IOException e = assertThrows(IOException.class, () -> pool.acquire(name));
            assertTrue(e.getMessage().contains("init_lora_weights") && e.getMessage().contains("rewrites the base weights"), e.getMessage());
        }
        assertArrayEquals(w0, weight(0));
        assertArrayEquals(w1, weight(1));
        assertTrue(Lora.adapterNames(model).isEmpty());
        assertEquals(0, pool.stats().loads());
    }

    @Test
    void doraAdaptersServeWithTheirMagnitudesCountedButCannotBeCut() throws IOException {
        save("dora", LoraConfig.of(2, 4).withTargetModules("0", "1").withUseDora(true), List.of());
        AdapterPool pool = pool();
        try (var lease = pool.acquire("dora")) {
            // factors A 2×4 + B 6×2 + A 2×6 + B 3×2 = 38 floats, magnitudes 6 + 3
            assertEquals((38 + 9) * 4L, lease.bytes());
        }
        IOException e = assertThrows(IOException.class, () -> pool.acquire("dora", 1));
        assertTrue(e.getMessage().contains("use_dora"), e.getMessage());
        assertEquals(1, pool.stats().size());
    }

    @Test
    void modulesToSaveStayOutOfTheModelAndAreCounted() throws IOException {
        save("head", LoraConfig.of(2, 4).withTargetModules("0"), List.of("1"));
        double[] w1 = weight(1);
        AdapterPool pool = pool();
        try (var lease = pool.acquire("head"); Safetensors.Contents file = Safetensors.read(root.resolve("head").resolve(PeftAdapter.WEIGHTS))) {
            assertArrayEquals(w1, weight(1), "the shared layer 1 is not overwritten");
            Map<String, Tensor> own = lease.modulesToSave();
            assertEquals(List.of("1.bias", "1.weight"), own.keySet().stream().sorted().toList());
            assertArrayEquals(file.tensors().get("base_model.model.1.weight").toDoubleArray(), own.get("1.weight").toDoubleArray());
            // factors of layer 0: A 2×4 + B 6×2; head: 3×6 + 3; float32
            assertEquals((8 + 12 + 18 + 3) * 4L, lease.bytes());
            assertEquals(lease.bytes(), pool.stats().bytes());
        }
    }

    @Test
    void invalidatedAdaptersServeTheirHoldersAndLaterAcquiresGetTheNewFolder() throws IOException {
        LoraConfig c = LoraConfig.of(2, 4).withTargetModules("0", "1");
        save("t", c, List.of());
        save("other", c, List.of());
        AdapterPool pool = pool();
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(3, 4);
            AdapterPool.Lease old = pool.acquire("t");
            Tensor before = Lora.forward(model, x, old.name(), old.name(), old.name());
            for (String f : new String[] {PeftAdapter.WEIGHTS, PeftAdapter.CONFIG}) { // the folder changes: weights, then config
                Files.copy(root.resolve("other").resolve(f), root.resolve("t").resolve(f), StandardCopyOption.REPLACE_EXISTING);
            }
            assertEquals(1, pool.invalidate("t"));
            assertEquals(List.of(), pool.residentNames());
            assertEquals(1, pool.stats().size(), "still leased: still in the model");
            Tensor expected;
            try (AdapterPool.Lease o = pool.acquire("other")) {
                expected = Lora.forward(model, x, o.name(), o.name(), o.name());
            }
            try (AdapterPool.Lease fresh = pool.acquire("t")) {
                assertNotEquals(old.name(), fresh.name());
                Tensor mixed = Lora.forward(model, x, old.name(), fresh.name(), old.name());
                assertTrue(mixed.narrow(0, 0, 1).allclose(before.narrow(0, 0, 1), 1e-5, 1e-6), "the holder keeps the old version");
                assertTrue(mixed.narrow(0, 1, 1).allclose(expected.narrow(0, 1, 1), 1e-5, 1e-6), "a new acquire gets the new folder");
                assertFalse(before.allclose(expected, 1e-3, 1e-3));
            }
            String oldName = old.name();
            old.close();
            assertFalse(Lora.adapterNames(model).contains(oldName), "deleted when its last lease closed");
            AdapterPool.Stats st = pool.stats();
            assertEquals(2, st.size());
            assertEquals(1, st.unloads());
            assertEquals(3, st.loads());
            assertEquals(st.bytes(), AdapterPool.residentBytes(model, pool.adapterNames().get(0)) * 2);
        }
    }

    @Test
    void aRankCutIsTheAdapterTruncatedToThatRank() throws IOException {
        double alpha = 4;
        save("dy", LoraConfig.of(3, alpha).withTargetModules("0", "1"), List.of());
        AdapterPool pool = pool();
        try (TensorScope s = TensorScope.open();
             Safetensors.Contents file = Safetensors.read(root.resolve("dy").resolve(PeftAdapter.WEIGHTS))) {
            Tensor x = Tensor.randn(2, 4);
            Linear l0 = (Linear) model.get(0);
            Linear l1 = (Linear) model.get(1);
            for (int rank = 1; rank <= 3; rank++) {
                // plain tensors: y = x·Wᵀ + b + (α/r)·x·A[:r]ᵀ·B[:, :r]ᵀ per layer
                Tensor h = x;
                for (int layer = 0; layer < 2; layer++) {
                    Linear base = layer == 0 ? l0 : l1;
                    Tensor a = file.tensors().get("base_model.model." + layer + ".lora_A.weight").narrow(0, 0, rank);
                    Tensor b = file.tensors().get("base_model.model." + layer + ".lora_B.weight").narrow(1, 0, rank);
                    h = h.matmul(base.weight().t()).add(base.bias()).add(h.matmul(a.t()).matmul(b.t()).mul(alpha / rank));
                }
                Tensor reference = h;
                try (AdapterPool.Lease lease = pool.acquire("dy", rank == 3 ? 0 : rank)) {
                    Tensor y = Lora.forward(model, x, lease.name(), lease.name());
                    assertTrue(y.allclose(reference, 1e-5, 1e-5), "rank " + rank);
                }
            }
            assertEquals(List.of("dy@1", "dy@2", "dy"), pool.residentNames());
            assertThrows(IOException.class, () -> pool.acquire("dy", 4), "above the saved rank");
            assertThrows(IllegalArgumentException.class, () -> pool.acquire("dy", -1));
            assertEquals(3, pool.invalidate("dy"), "every rank of the name");
            assertTrue(Lora.adapterNames(model).isEmpty());
        }
    }
}
