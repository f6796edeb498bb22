package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The rules of {@link AdapterLock} that the churn test does not single out. */
class AdapterLockTest {

    private static Sequential twoAdapters() {
        Torch.manualSeed(3);
        Sequential m = new Sequential(new Linear(5, 7), Activation.relu(), new Linear(7, 3));
        Lora.wrap(m, LoraConfig.of(2, 2));
        Lora.addAdapter(m, "b", LoraConfig.of(2, 4));
        for (LoraLayer l : Lora.loraLayers(m).values()) for (String n : l.adapterNames()) NamedAdaptersTest.randomize(l, n);
        m.eval();
        return m;
    }

    @Test
    void aChangeInsideAForwardOfTheSameModelIsRefusedNotADeadlock() {
        try (Sequential m = twoAdapters()) {
            IllegalStateException e = AdapterLock.reading(m, () -> assertThrows(IllegalStateException.class, () -> Lora.setAdapter(m, "b")));
            assertTrue(e.getMessage().contains("forward"), e.getMessage());
            LoraLayer first = Lora.loraLayers(m).values().iterator().next();
            AdapterLock.reading(m, () -> assertThrows(IllegalStateException.class, () -> first.setActiveAdapters("b")));
            // Reads inside a change are fine (the write lock includes reading).
            assertEquals(List.of("default", "b"), AdapterLock.changing(m, () -> Lora.adapterNames(m)));
        }
    }

    /** Several changes in one {@link AdapterLock#changing} block: a forward waiting meanwhile sees the state after all of them. */
    @Test
    void changesMadeOneAreSeenWholeByAForwardThatWaited() throws Exception {
        try (Sequential m = twoAdapters(); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Tensor x = Tensor.randn(4, 5);
            Tensor withDefault = Lora.forward(m, x);
            Lora.setAdapter(m, "b");
            Tensor withB = Lora.forward(m, x);
            Lora.setAdapter(m, "default");
            assertFalse(withDefault.allclose(withB, 1e-4, 1e-4), "the adapters differ");
            CountDownLatch inside = new CountDownLatch(1);
            AtomicBoolean changing = new AtomicBoolean(true);
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                Future<float[]> reader = pool.submit(() -> {
                    inside.await();
                    try (var ng2 = Torch.noGrad(); TensorScope s2 = TensorScope.open()) {
                        float[] y = Lora.forward(m, x).toFloatArray();
                        assertFalse(changing.get(), "the forward ran while the change was in progress");
                        return y;
                    }
                });
                AdapterLock.changing(m, () -> {
                    Lora.setAdapter(m, "b");
                    inside.countDown();
                    Thread.sleep(200); // the forward is waiting for the lock now
                    Lora.setAdapter(m, "default");
                    Lora.merge(m, false);
                    changing.set(false);
                    return null;
                });
                assertArrayEquals(withDefault.toFloatArray(), reader.get(30, TimeUnit.SECONDS), 1e-5f);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    /** DyLoRA rank changes while forwards run: every answer is the model at one rank, never layers at two. */
    @Test
    void dyLoraRankChangesWhileForwardsRun() throws Exception {
        Torch.manualSeed(9);
        try (Sequential m = new Sequential(new Linear(6, 8), Activation.tanh(), new Linear(8, 8), Activation.tanh(), new Linear(8, 3));
             TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            DyLora.wrap(m, LoraConfig.of(4, 4));
            for (var mod : m.namedModules().values()) {
                if (mod instanceof dev.lora4j.dylora.DyLoraLayer d) d.loraB().copy_(Tensor.randn(d.loraB().shape()));
            }
            m.eval();
            Tensor x = Tensor.randn(5, 6);
            DyLora.setRank(m, 1);
            Tensor at1 = Lora.forward(m, x);
            DyLora.setRank(m, 4);
            Tensor at4 = Lora.forward(m, x);
            assertFalse(at1.allclose(at4, 1e-3, 1e-3));
            AtomicBoolean stop = new AtomicBoolean();
            ExecutorService pool = Executors.newFixedThreadPool(3);
            List<Future<Integer>> readers = new ArrayList<>();
            try {
                for (int t = 0; t < 3; t++) {
                    readers.add(pool.submit(() -> {
                        int n = 0;
                        try (var ng2 = Torch.noGrad()) {
                            while (!stop.get()) {
                                try (TensorScope s2 = TensorScope.open()) {
                                    Tensor y = Lora.forward(m, x);
                                    assertTrue(y.allclose(at1, 1e-5, 1e-5) || y.allclose(at4, 1e-5, 1e-5), "layers at two ranks");
                                    n++;
                                }
                            }
                        }
                        return n;
                    }));
                }
                long end = System.nanoTime() + 1_500_000_000L;
                for (int k = 0; System.nanoTime() < end; k++) DyLora.setRank(m, k % 2 == 0 ? 1 : 4);
            } finally {
                stop.set(true);
                pool.shutdown();
            }
            int forwards = 0;
            for (Future<Integer> f : readers) forwards += f.get(30, TimeUnit.SECONDS);
            assertTrue(forwards > 0);
        }
    }

    /** Parts wrapped separately, then put in one model: operations on the whole hold both parts' locks. */
    @Test
    void aModelWhosePartsWereWrappedSeparatelyHoldsAllTheirLocks() {
        Torch.manualSeed(4);
        Sequential encoder = new Sequential(new Linear(5, 6), Activation.relu());
        Sequential decoder = new Sequential(new Linear(6, 3));
        Lora.wrap(encoder, LoraConfig.of(2, 2));
        Lora.wrap(decoder, LoraConfig.of(2, 2));
        try (Sequential whole = new Sequential(encoder, decoder); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            for (LoraLayer l : Lora.loraLayers(whole).values()) NamedAdaptersTest.randomize(l, "default");
            whole.eval();
            Tensor x = Tensor.randn(3, 5);
            assertTrue(Lora.forward(whole, x).allclose(whole.forward(x), 0, 0));
            Lora.setAdaptersEnabled(whole, false);
            Tensor base = Lora.forward(whole, x);
            Lora.setAdaptersEnabled(whole, true);
            assertFalse(base.allclose(Lora.forward(whole, x), 1e-4, 1e-4));
            // Holding the whole's read lock holds each part's: a change of a part waits, or here (same thread) is refused.
            AdapterLock.reading(whole, () -> assertThrows(IllegalStateException.class, () -> Lora.setAdapter(decoder)));
            AdapterLock.reading(whole, () -> assertThrows(IllegalStateException.class, () -> Lora.setAdapter(encoder)));
        }
    }
}
