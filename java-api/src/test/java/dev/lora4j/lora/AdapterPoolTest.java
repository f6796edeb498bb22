package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter pool: loaded on first use, least-recently-used eviction under a byte budget,
 * leased adapters kept, concurrent first acquires loading once, broken folders refused with
 * the pool left usable; its counters checked against the sequence of acquires.
 */
class AdapterPoolTest {

    /** Rank-2 float32 adapters on Linear 4→6 and 6→3: A (2×4) + B (6×2) + A (2×6) + B (3×2) = 38 floats. */
    static final long ADAPTER_BYTES = 38 * 4;
    static final int TENANTS = 5;

    @TempDir
    Path root;

    private Module model;

    private static Module net() {
        return new Sequential(new Linear(4, 6), new Linear(6, 3));
    }

    @BeforeEach
    void adapters() throws IOException {
        Torch.manualSeed(15);
        for (int k = 0; k < TENANTS; k++) {
            try (Module src = net()) {
                LoraConfig c = LoraConfig.of(2, 4).withTargetModules("0", "1");
                Lora.wrap(src, c);
                try (var ng = Torch.noGrad()) {
                    for (LoraLayer l : Lora.loraLayers(src).values()) dev.lora4j.nn.Init.normal_(l.loraB(), 0, 1);
                }
                PeftAdapter.save(src, c, root.resolve("t" + k));
            }
        }
        model = net().eval();
    }

    @AfterEach
    void close() {
        model.close();
    }

    private AdapterPool pool(int adapters) {
        return new AdapterPool(model, root, adapters * ADAPTER_BYTES);
    }

    private void use(AdapterPool pool, String name) throws IOException {
        try (AdapterPool.Lease l = pool.acquire(name)) {
            assertEquals(name, l.tenant());
            assertTrue(l.name().startsWith(name + "~"), l.name());
            assertEquals(ADAPTER_BYTES, l.bytes());
        }
    }

    /** The pool's versions are exactly the model's adapters. */
    private void assertConsistent(AdapterPool pool) {
        assertEquals(new HashSet<>(pool.adapterNames()), new HashSet<>(Lora.adapterNames(model)));
        assertEquals(pool.residentNames().size() * ADAPTER_BYTES, pool.stats().bytes());
    }

    @Test
    void factorBytesCountEveryLayersFactors() throws IOException {
        PeftAdapter.load(model, root.resolve("t0"), "t0");
        assertEquals(ADAPTER_BYTES, AdapterPool.residentBytes(model, "t0"));
        assertEquals(0, AdapterPool.residentBytes(model, "other"));
    }

    @Test
    void evictsTheLeastRecentlyUsedUnderTheBudget() throws IOException {
        AdapterPool pool = pool(3);
        use(pool, "t0");
        use(pool, "t1");
        use(pool, "t2");
        assertEquals(List.of("t0", "t1", "t2"), pool.residentNames());
        use(pool, "t0"); // a hit: t0 becomes the most recent
        assertEquals(List.of("t1", "t2", "t0"), pool.residentNames());
        use(pool, "t3"); // over budget: t1 goes
        assertEquals(List.of("t2", "t0", "t3"), pool.residentNames());
        use(pool, "t4"); // then t2
        use(pool, "t1"); // t1 again: loaded anew, t0 goes
        assertEquals(List.of("t3", "t4", "t1"), pool.residentNames());
        assertConsistent(pool);
        assertEquals(new AdapterPool.Stats(3, 3 * ADAPTER_BYTES, 3 * ADAPTER_BYTES, 0, 1, 6, 6, 3, 0), pool.stats());
    }

    @Test
    void leasedAdaptersAreNotEvictedAndStillServe() throws IOException {
        AdapterPool pool = pool(1);
        try (Tensor x = Tensor.randn(2, 4); AdapterPool.Lease held = pool.acquire("t0"); Tensor before = Lora.forward(model, x, held.name(), held.name())) {
            try (AdapterPool.Lease other = pool.acquire("t1")) {
                assertEquals(2, pool.stats().size(), "both leased: the budget waits");
                assertEquals(2, pool.stats().pinned());
            }
            assertEquals(List.of("t0"), pool.residentNames(), "t1 evicted on release, t0 kept although older");
            try (Tensor after = Lora.forward(model, x, held.name(), held.name())) {
                assertArrayEquals(before.toDoubleArray(), after.toDoubleArray(), 1e-5, "float32 rounding of other kernels aside");
            }
        }
        assertEquals(List.of("t0"), pool.residentNames());
        assertConsistent(pool);
        // an adapter alone larger than the budget is loaded, served, and evicted when released
        AdapterPool tiny = new AdapterPool(model, root, 10);
        use(tiny, "t2");
        assertTrue(tiny.adapterNames().isEmpty());
        assertEquals(new AdapterPool.Stats(0, 0, 10, 0, 0, 1, 1, 1, 0), tiny.stats());
    }

    @Test
    void concurrentAcquiresOfOneNameLoadOnce() throws Exception {
        AdapterPool pool = pool(2);
        int threads = 8;
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService ex = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int i = 0; i < threads; i++) {
                fs.add(ex.submit(() -> {
                    start.await();
                    try (AdapterPool.Lease l = pool.acquire("t0"); Tensor x = Tensor.randn(1, 4); Tensor y = Lora.forward(model, x, l.name())) {
                        assertEquals(3, y.size(1));
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : fs) f.get();
            AdapterPool.Stats s = pool.stats();
            assertEquals(1, s.loads());
            assertEquals(1, s.misses());
            assertEquals(threads - 1, s.hits());
            // many names at once under a budget of two: every forward finds its adapter, and the budget holds after
            fs.clear();
            for (int i = 0; i < 4 * threads; i++) {
                String name = "t" + (i % TENANTS);
                fs.add(ex.submit(() -> {
                    try (AdapterPool.Lease l = pool.acquire(name); Tensor x = Tensor.randn(1, 4); Tensor y = Lora.forward(model, x, l.name())) {
                        assertEquals(3, y.size(1));
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) f.get();
        } finally {
            ex.shutdownNow();
        }
        AdapterPool.Stats s = pool.stats();
        assertTrue(s.bytes() <= 2 * ADAPTER_BYTES, s.toString());
        assertEquals(0, s.pinned());
        assertEquals(s.loads() - s.evictions(), s.size(), s.toString());
        assertEquals(5 * threads, s.hits() + s.misses(), s.toString());
        assertConsistent(pool);
    }

    @Test
    void aBrokenFolderIsAnIOExceptionAndThePoolStaysUsable() throws IOException {
        AdapterPool pool = pool(2);
        use(pool, "t0");
        Path bad = Files.createDirectories(root.resolve("bad"));
        Files.writeString(bad.resolve(PeftAdapter.CONFIG), "{\"peft_type\": \"LORA\", \"r\": ");
        Files.copy(root.resolve("t1").resolve(PeftAdapter.WEIGHTS), bad.resolve(PeftAdapter.WEIGHTS));
        assertThrows(IOException.class, () -> pool.acquire("bad"));
        assertThrows(IOException.class, () -> pool.acquire("missing"));
        assertThrows(IOException.class, () -> pool.acquire("bad"), "a failed load is tried again, not cached");
        assertEquals(List.of("t0"), pool.residentNames());
        assertEquals(pool.adapterNames(), Lora.adapterNames(model));
        use(pool, "t1");
        assertEquals(new AdapterPool.Stats(2, 2 * ADAPTER_BYTES, 2 * ADAPTER_BYTES, 0, 0, 5, 2, 0, 0), pool.stats());
        assertConsistent(pool);
    }

    /**
     * An adapter deleted from the model behind the pool's back has nothing left to delete: the
     * pool drops it and frees its data instead of keeping it (and its bytes) forever, and the
     * next acquire loads the folder afresh.
     */
    @Test
    void anAdapterDeletedBehindThePoolsBackLeavesThePoolOnItsNextUnload() throws IOException {
        AdapterPool pool = pool(2);
        use(pool, "t0");
        Lora.deleteAdapter(model, pool.adapterNames().get(0));
        assertEquals(1, pool.invalidate("t0"));
        assertEquals(List.of(), pool.residentNames());
        assertEquals(0, pool.stats().bytes());
        try (AdapterPool.Lease l = pool.acquire("t0"); Tensor x = Tensor.randn(1, 4); Tensor y = Lora.forward(model, x, l.name())) {
            assertEquals(3, y.size(1));
        }
        assertConsistent(pool);
    }

    @Test
    void namesThatAreNotPlainFoldersAreRefused() {
        AdapterPool pool = pool(2);
        for (String name : new String[] {"", "../t0", "a/b", "a\\b", "a.b", "/t0", AdapterBank.BASE, "t\0", "t0~1", "t0@2"}) {
            assertThrows(IllegalArgumentException.class, () -> pool.acquire(name), name);
        }
        assertThrows(NullPointerException.class, () -> new AdapterPool(null, root, 1));
        assertThrows(IllegalArgumentException.class, () -> new AdapterPool(model, root, -1));
        assertEquals(0, pool.stats().misses());
    }
}
