package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The count of unowned native bytes when threads batch their updates (each thread keeps a
 * pending count of less than 64 KiB): small tensors are counted exactly on their own thread,
 * closing on another thread or a thread's end loses nothing.
 */
class UnownedCountTest {

    private static final long SMALL = 1000 * 4; // a 1000-element float32 tensor, far below the batch size

    /** The count once garbage that earlier tests left to the safety net is freed (so that it stays put). */
    private static long settled() throws InterruptedException {
        System.gc();
        long last = Torch.unownedTensorBytes();
        for (int i = 0; i < 100; i++) {
            Thread.sleep(30);
            long now = Torch.unownedTensorBytes();
            if (now == last) return now;
            last = now;
        }
        return last;
    }

    @Test
    void smallTensorsCountExactlyOnTheirThread() throws Exception {
        long before = settled();
        Tensor[] ts = new Tensor[10];
        for (int i = 0; i < ts.length; i++) ts[i] = Tensor.zeros(1000);
        assertEquals(10 * SMALL, Torch.unownedTensorBytes() - before);
        for (Tensor t : ts) t.close();
        assertEquals(0, Torch.unownedTensorBytes() - before);
    }

    /** Created on a thread that ends, closed here: the ended thread's pending bytes reach the count, then leave it. */
    @Test
    void anEndedThreadsBytesAreNotLost() throws Exception {
        long before = settled();
        AtomicReference<Tensor> made = new AtomicReference<>();
        Thread worker = Thread.ofPlatform().start(() -> made.set(Tensor.zeros(1000)));
        worker.join();
        // the safety net's thread takes over the ended thread's count within about a second
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (Torch.unownedTensorBytes() - before != SMALL && System.nanoTime() < deadline) Thread.sleep(20);
        assertEquals(SMALL, Torch.unownedTensorBytes() - before);
        made.get().close(); // not on its thread: straight to the global count
        assertEquals(0, Torch.unownedTensorBytes() - before);
    }

    /** Created here, closed on a live other thread: the count is right again once this thread's batch is in. */
    @Test
    void closingOnAnotherThreadBalances() throws Exception {
        long before = settled();
        Tensor t = Tensor.zeros(1000);
        Thread closer = Thread.ofPlatform().start(t::close);
        closer.join();
        assertTrue(t.isClosed());
        // this thread still holds +SMALL pending, the closer took SMALL off the global count
        assertEquals(0, Torch.unownedTensorBytes() - before);
        try (Tensor big = Tensor.zeros(1 << 20)) { // 4 MiB: flushes this thread's batch
            assertEquals(4L << 20, Torch.unownedTensorBytes() - before);
        }
        assertEquals(0, Torch.unownedTensorBytes() - before);
    }
}
