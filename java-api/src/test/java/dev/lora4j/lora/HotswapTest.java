package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hot-swapping (PEFT's hotswap_adapter): a swapped model computes what a model freshly loaded
 * with the new adapter computes, while its tensors, names and shapes stay; smaller ranks are
 * zero-padded, prepare pads ahead, incompatible adapters change nothing.
 */
class HotswapTest {

    @TempDir
    Path dir;

    /** The same base model every call: Linear(6, 5) then Linear(5, 4). */
    private static Sequential base() {
        Torch.manualSeed(7);
        return new Sequential(new Linear(6, 5), new Linear(5, 4));
    }

    /** Saves a random adapter of {@code config} (seeded) and returns its folder. */
    private Path adapter(String name, LoraConfig config, long seed) throws IOException {
        try (Sequential m = base()) {
            Lora.wrap(m, config);
            Torch.manualSeed(seed);
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                NamedAdaptersTest.randomize(l, "default");
                if (l instanceof LoraLinear ll && ll.dora("default") != null) {
                    try (var ng = Torch.noGrad()) {
                        ll.dora("default").weight().mul_(1.3);
                    }
                }
            }
            Path d = dir.resolve(name);
            PeftAdapter.save(m, "default", d);
            return d;
        }
    }

    private static Tensor out(Sequential m, Tensor x) {
        m.eval();
        try (var ng = Torch.noGrad()) {
            return m.forward(x);
        }
    }

    private static Tensor fresh(Path folder, Tensor x) throws IOException {
        try (Sequential m = base()) {
            PeftAdapter.load(m, folder);
            return out(m, x).detach().clone();
        }
    }

    @Test
    void swappedModelComputesTheNewAdapterAndKeepsItsTensors() throws IOException {
        Path one = adapter("one", LoraConfig.of(3, 6), 1);
        Path two = adapter("two", LoraConfig.of(3, 2), 2);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, one);
            LoraLinear l0 = (LoraLinear) m.get(0);
            Tensor a = l0.loraA();
            long version = a.version();
            assertTrue(out(m, x).allclose(fresh(one, x), 1e-6, 1e-6));
            PeftAdapter.hotswap(m, two, "default");
            assertSame(a, l0.loraA(), "the same tensor object");
            assertNotEquals(version, a.version(), "its values changed");
            assertTrue(out(m, x).allclose(fresh(two, x), 1e-6, 1e-6), "= a model loaded with the new adapter");
            assertEquals(2.0 / 3, l0.scaling(), 1e-12, "α/r of the new config");
        }
    }

    @Test
    void smallerRanksArePaddedAndScaledAsTheNewConfigSays() throws IOException {
        Path big = adapter("big", LoraConfig.of(4, 8), 3);
        Path small = adapter("small", LoraConfig.of(2, 3), 4);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, big);
            PeftAdapter.hotswap(m, small, "default");
            LoraLinear l0 = (LoraLinear) m.get(0);
            assertArrayEquals(new long[] {4, 6}, l0.loraA().shape(), "shape kept");
            assertEquals(1.5, l0.scaling(), 1e-12, "α/r of the new adapter");
            assertTrue(l0.loraA().narrow(0, 2, 2).equal(Tensor.zeros(2, 6)), "padding rows are zero");
            assertTrue(out(m, x).allclose(fresh(small, x), 1e-6, 1e-6));
            // The mixed-batch path sees the new values too.
            Tensor mixed;
            try (var ng = Torch.noGrad()) {
                mixed = Lora.forward(m, x, "default", AdapterBank.BASE, "default", "default");
            }
            assertTrue(mixed.narrow(0, 0, 1).allclose(fresh(small, x).narrow(0, 0, 1), 1e-5, 1e-6));
        }
    }

    @Test
    void prepareThenSwapALargerRank() throws IOException {
        Path small = adapter("small", LoraConfig.of(2, 4), 5);
        Path larger = adapter("larger", LoraConfig.of(5, 5).withTargetModules("0"), 6);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, small);
            Tensor before = out(m, x);
            Tensor b1 = ((LoraLayer) m.get(1)).baseLayer().parameter("weight").clone();
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.hotswap(m, larger, "default")).getMessage().contains("prepare"));
            assertTrue(out(m, x).equal(before), "a refused swap changes nothing");
            assertEquals(2, Hotswap.prepare(m, 5));
            assertArrayEquals(new long[] {5, 6}, ((LoraLayer) m.get(0)).loraA().shape());
            assertEquals(2.0, ((LoraLayer) m.get(0)).scaling(), 1e-12, "scale kept");
            assertTrue(out(m, x).allclose(before, 1e-6, 1e-6), "padding changes nothing");
            PeftAdapter.hotswap(m, larger, "default");
            assertTrue(out(m, x).allclose(fresh(larger, x), 1e-6, 1e-6), "layer 1 (not in the file) adds nothing");
            assertTrue(((LoraLayer) m.get(1)).loraB().equal(Tensor.zeros(4, 5)));
            assertTrue(((LoraLayer) m.get(1)).baseLayer().parameter("weight").equal(b1));
        }
    }

    @Test
    void doraAdaptersSwapTheirMagnitude() throws IOException {
        Path one = adapter("d1", LoraConfig.of(2, 4).withUseDora(true), 8);
        Path two = adapter("d2", LoraConfig.of(2, 2).withUseDora(true), 9);
        Path plain = adapter("plain", LoraConfig.of(2, 2), 10);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, one);
            PeftAdapter.hotswap(m, two, "default");
            assertTrue(out(m, x).allclose(fresh(two, x), 1e-5, 1e-6));
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.hotswap(m, plain, "default")).getMessage().contains("use_dora"));
        }
    }

    @Test
    void incompatibleAdaptersAreRefused() throws IOException {
        Path one = adapter("one", LoraConfig.of(2, 4), 11);
        Path rs = adapter("rs", LoraConfig.of(2, 4).withRslora(true), 12);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            PeftAdapter.load(m, one);
            assertTrue(assertThrows(IOException.class, () -> PeftAdapter.hotswap(m, rs, "default")).getMessage().contains("use_rslora"));
            assertThrows(IllegalArgumentException.class, () -> PeftAdapter.hotswap(m, one, "nope"));
            assertThrows(IllegalArgumentException.class, () -> Hotswap.swap(m, "default",
                    Map.of("2", new Hotswap.Update(Tensor.zeros(2, 6), Tensor.zeros(5, 2), null, 1))), "no such layer");
            assertThrows(IllegalArgumentException.class, () -> Hotswap.swap(m, "default",
                    Map.of("0", new Hotswap.Update(Tensor.zeros(2, 7), Tensor.zeros(5, 2), null, 1))), "wrong in_features");
            assertThrows(IllegalArgumentException.class, () -> Hotswap.prepare(m, 0));
            Lora.merge(m, false);
            assertThrows(IOException.class, () -> PeftAdapter.hotswap(m, one, "default"), "merged");
        }
    }

    /**
     * Swaps, padding and task-arithmetic combinations are adapter changes ({@link AdapterLock}):
     * refused inside a forward of the same model (nothing changes), and a swap from another
     * thread waits for a running forward to end, then lands whole.
     */
    @Test
    void swapsTakeTheAdapterLock() throws Exception {
        Path one = adapter("one", LoraConfig.of(3, 6), 1);
        Path two = adapter("two", LoraConfig.of(3, 2), 2);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, one);
            Tensor before = out(m, x);
            AdapterLock.reading(m, () -> {
                assertThrows(IllegalStateException.class, () -> PeftAdapter.hotswap(m, two, "default"));
                assertThrows(IllegalStateException.class, () -> Hotswap.prepare(m, 5));
                assertThrows(IllegalStateException.class, () -> Lora.addWeightedAdapter(m, List.of("default"), new double[] {1}, "t",
                        Combination.TIES, 0, 0.5, MergeUtils.MajoritySign.TOTAL));
                return null;
            });
            assertTrue(out(m, x).equal(before), "nothing changed");
            assertEquals(List.of("default"), Lora.adapterNames(m));
            CountDownLatch reading = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                Future<?> reader = pool.submit(() -> AdapterLock.reading(m, () -> {
                    reading.countDown();
                    release.await();
                    return null;
                }));
                assertTrue(reading.await(30, TimeUnit.SECONDS));
                Future<?> swap = pool.submit(() -> {
                    PeftAdapter.hotswap(m, two, "default");
                    return null;
                });
                Thread.sleep(300); // the swap is waiting for the running forward now
                assertFalse(swap.isDone(), "the swap waits for the running forward");
                release.countDown();
                swap.get(30, TimeUnit.SECONDS);
                reader.get(30, TimeUnit.SECONDS);
            } finally {
                release.countDown();
                pool.shutdownNow();
            }
            assertTrue(out(m, x).allclose(fresh(two, x), 1e-6, 1e-6), "the swap landed whole");
        }
    }

    /** Every factor (and DoRA magnitude) of the model, copied, with the scales: what a refused swap must leave. */
    private static List<Object> snapshot(Sequential m) {
        List<Object> all = new java.util.ArrayList<>();
        try (var ng = Torch.noGrad()) {
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                all.add(l.loraA().detach().clone());
                all.add(l.loraB().detach().clone());
                if (l instanceof LoraLinear ll && ll.dora("default") != null) all.add(ll.dora("default").weight().detach().clone());
                all.add(l.scaling());
            }
        }
        return all;
    }

    private static void assertUnchanged(List<Object> before, Sequential m, String what) {
        List<Object> now = snapshot(m);
        assertEquals(before.size(), now.size());
        for (int i = 0; i < before.size(); i++) {
            if (before.get(i) instanceof Tensor t) {
                assertTrue(t.equal((Tensor) now.get(i)), what + ": tensor " + i + " of the snapshot changed (|before| "
                        + t.abs().sum().item() + ", |after| " + ((Tensor) now.get(i)).abs().sum().item() + ")");
            } else {
                assertEquals(before.get(i), now.get(i), what + ": scale " + i + " changed");
            }
        }
    }

    /** A tensor whose shape is cached (so a shape check passes) but that is closed. */
    private static Tensor closedAfterShape(long... shape) {
        Tensor t = Tensor.randn(shape);
        assertArrayEquals(shape, t.shape());
        t.close();
        return t;
    }

    /**
     * A swap is all-or-nothing across layers: an update that passes the shape checks but cannot be
     * read (closed after its shape was cached) leaves every layer as it was, whether it is the first
     * layer's or a later one's (the first layer used to be zeroed, earlier layers swapped).
     */
    @Test
    void aSwapThatFailsMidwayChangesNothing() throws IOException {
        Path one = adapter("one", LoraConfig.of(3, 6), 1);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, one);
            Tensor before = out(m, x);
            List<Object> snap = snapshot(m);
            assertTrue(((LoraLayer) m.get(0)).loraA().abs().sum().item() > 1, "a non-zero adapter to lose");

            IllegalStateException first = assertThrows(IllegalStateException.class, () -> Hotswap.swap(m, "default",
                    Map.of("0", new Hotswap.Update(closedAfterShape(3, 6), Tensor.randn(5, 3), null, 1))));
            assertUnchanged(snap, m, "a closed A in the first layer");
            assertTrue(first.getMessage().startsWith("0: ") && first.getMessage().contains("closed"), first.getMessage());

            Map<String, Hotswap.Update> later = new java.util.LinkedHashMap<>();
            later.put("0", new Hotswap.Update(Tensor.randn(3, 6), Tensor.randn(5, 3), null, 0.5));
            later.put("1", new Hotswap.Update(Tensor.randn(3, 5), closedAfterShape(4, 3), null, 0.5));
            IllegalStateException second = assertThrows(IllegalStateException.class, () -> Hotswap.swap(m, "default", later));
            assertUnchanged(snap, m, "a closed B in a later layer");
            assertTrue(second.getMessage().startsWith("1: ") && second.getMessage().contains("closed"), second.getMessage());
            assertTrue(out(m, x).equal(before), "the model computes what it did");
            // The model still swaps afterwards.
            later.put("1", new Hotswap.Update(Tensor.randn(3, 5), Tensor.randn(4, 3), null, 0.5));
            Hotswap.swap(m, "default", later);
            assertTrue(((LoraLayer) m.get(1)).loraB().equal(later.get("1").b()));
            assertEquals(0.5, ((LoraLayer) m.get(0)).scaling(), 1e-12);
        }
    }

    /** The same for DoRA: a closed magnitude in a later layer leaves factors and magnitudes of all layers. */
    @Test
    void aDoraSwapThatFailsMidwayChangesNothing() throws IOException {
        Path one = adapter("d1", LoraConfig.of(2, 4).withUseDora(true), 8);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            PeftAdapter.load(m, one);
            List<Object> snap = snapshot(m);
            Map<String, Hotswap.Update> updates = new java.util.LinkedHashMap<>();
            updates.put("0", new Hotswap.Update(Tensor.randn(2, 6), Tensor.randn(5, 2), Tensor.rand(5), 2));
            updates.put("1", new Hotswap.Update(Tensor.randn(2, 5), Tensor.randn(4, 2), closedAfterShape(4), 2));
            assertThrows(IllegalStateException.class, () -> Hotswap.swap(m, "default", updates));
            assertUnchanged(snap, m, "a closed magnitude in a later layer");
        }
    }

    /**
     * A scale the layer's config cannot take (0, negative, or one whose α = s·r overflows) is
     * refused before anything changes (it used to throw from the config after the factors were written).
     */
    @Test
    void aScaleTheConfigCannotTakeChangesNothing() throws IOException {
        Path one = adapter("one", LoraConfig.of(3, 6), 1);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            PeftAdapter.load(m, one);
            List<Object> snap = snapshot(m);
            Map<String, Hotswap.Update> updates = new java.util.LinkedHashMap<>();
            updates.put("0", new Hotswap.Update(Tensor.randn(3, 6), Tensor.randn(5, 3), null, 1));
            updates.put("1", new Hotswap.Update(Tensor.randn(3, 5), Tensor.randn(4, 3), null, Double.MAX_VALUE));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Hotswap.swap(m, "default", updates));
            assertUnchanged(snap, m, "an overflowing scale in a later layer");
            assertTrue(e.getMessage().startsWith("1: "), e.getMessage());
            for (double bad : new double[] {0, -1, -0.0}) {
                IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                        () -> new Hotswap.Update(Tensor.randn(3, 6), Tensor.randn(5, 3), null, bad), "scaling " + bad);
                assertTrue(refused.getMessage().contains("scaling"), refused.getMessage());
            }
        }
    }

    /**
     * Updates are read before anything is written, so an update may be (a view of) a factor of the
     * model itself: swapping the adapter for itself changes nothing, and a layer may take another
     * layer's old values (both used to read factors the swap had already zeroed).
     */
    @Test
    void updatesThatAliasTheModelsFactorsAreReadBeforeTheWrite() throws IOException {
        Path one = adapter("one", LoraConfig.of(3, 6), 1);
        try (Sequential m = base(); TensorScope s = TensorScope.open()) {
            Tensor x = Tensor.randn(4, 6);
            PeftAdapter.load(m, one);
            LoraLayer l0 = (LoraLayer) m.get(0);
            LoraLayer l1 = (LoraLayer) m.get(1);
            Tensor before = out(m, x);
            List<Object> snap = snapshot(m);
            Map<String, Hotswap.Update> same = new java.util.LinkedHashMap<>();
            same.put("0", new Hotswap.Update(l0.loraA(), l0.loraB(), null, l0.scaling()));
            same.put("1", new Hotswap.Update(l1.loraA(), l1.loraB(), null, l1.scaling()));
            Hotswap.swap(m, "default", same);
            assertUnchanged(snap, m, "swapped for itself");
            assertTrue(out(m, x).equal(before));

            Tensor oldB0 = l0.loraB().detach().clone();
            Map<String, Hotswap.Update> crossed = new java.util.LinkedHashMap<>();
            crossed.put("0", new Hotswap.Update(l0.loraA(), l0.loraB().mul(2), null, l0.scaling()));
            crossed.put("1", new Hotswap.Update(l0.loraB().t(), l1.loraB(), null, l1.scaling())); // (3, 5) from B0 (5, 3)
            Hotswap.swap(m, "default", crossed);
            assertTrue(l1.loraA().equal(oldB0.t()), "layer 1 took layer 0's B as it was before the swap");
            assertTrue(l0.loraB().equal(oldB0.mul(2)));
        }
    }
}
