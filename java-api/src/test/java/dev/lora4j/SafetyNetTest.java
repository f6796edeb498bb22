package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The safety net's thread cases: closes on other threads, tensors of finished threads, growth. */
class SafetyNetTest {

    private static void awaitReclaimed(long atLeast) throws InterruptedException {
        for (int i = 0; i < 200 && Torch.reclaimedTensorCount() < atLeast; i++) {
            System.gc();
            Thread.sleep(20);
        }
        assertTrue(Torch.reclaimedTensorCount() >= atLeast, "reclaimed " + Torch.reclaimedTensorCount() + " < " + atLeast);
    }

    /** Lets the safety net reclaim whatever earlier tests left behind; returns the settled count. */
    private static long settle() throws InterruptedException {
        long last = -1;
        int stable = 0;
        for (int i = 0; i < 100 && stable < 3; i++) {
            System.gc();
            Thread.sleep(30);
            long now = Torch.reclaimedTensorCount();
            stable = now == last ? stable + 1 : 0;
            last = now;
        }
        return last;
    }

    @Test
    void tensorsClosedOnAnotherThreadAreFreedOnceAndForgotten() throws Exception {
        List<Tensor> made = new ArrayList<>();
        for (int i = 0; i < 300; i++) made.add(Tensor.ones(2)); // several registry growths
        Thread other = Thread.ofPlatform().start(() -> made.forEach(Tensor::close));
        other.join();
        long before = settle();
        for (Tensor t : made) {
            assertTrue(t.isClosed());
            assertThrows(IllegalStateException.class, t::numel);
            t.close(); // idempotent
        }
        made.clear();
        // New tensors on this thread reuse the registry's room (entries of closed tensors dropped).
        for (int i = 0; i < 300; i++) Tensor.ones(1).close();
        assertEquals(before, settle(), "closed tensors are never reclaimed again");
    }

    @Test
    void unclosedTensorsOfAFinishedThreadAreReclaimed() throws Exception {
        long before = Torch.reclaimedTensorCount();
        Thread t = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < 10; i++) Tensor.ones(3); // leaked on purpose
        });
        t.join();
        awaitReclaimed(before + 10);
    }

    @Test
    void aTensorKeptAliveByAnotherThreadOutlivesItsCreator() throws Exception {
        Tensor[] holder = new Tensor[1];
        Thread t = Thread.ofPlatform().start(() -> holder[0] = Tensor.full(7, 2));
        t.join();
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(20);
        }
        try (Tensor sum = holder[0].sum()) { // closed: left to the net, it would count in a later test
            assertEquals(14.0, sum.item());
        }
        holder[0].close();
        assertTrue(holder[0].isClosed());
    }
}
