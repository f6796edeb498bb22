package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/**
 * Every close path under misuse: scopes dropped or closed out of order, grad-mode scopes
 * closed out of order, and closes that fail part-way because a view of a tensor's data is in
 * use. None may leak a native object for good or leave the thread in the wrong state.
 */
class ScopeMisuseTest {

    @Test
    void aDroppedScopeStopsCapturingLaterTensorsAndItsTensorsGoToTheSafetyNet() throws InterruptedException {
        long before = Torch.reclaimedTensorCount();
        openAndDropAScopeWithATensor();
        // Until the collector notices the dropped scope, later tensors still join it; after,
        // they are the caller's (and the safety net's), and so are the dropped scope's own.
        for (int i = 0; i < 200 && Torch.reclaimedTensorCount() < before + 2; i++) {
            System.gc();
            Thread.sleep(10);
            Tensor.ones(2); // dropped: reclaimable only if no scope captured it
        }
        assertTrue(Torch.reclaimedTensorCount() >= before + 2,
                "tensors of and after a dropped scope were never reclaimed: " + (Torch.reclaimedTensorCount() - before));
        settle(); // reclaim the rest of this test's dropped tensors now, not during another test
        try (TensorScope s = TensorScope.open()) {
            Tensor t = Tensor.ones(1);
            assertEquals(1, s.size());
            s.close();
            assertTrue(t.isClosed());
        }
    }

    private static void settle() throws InterruptedException {
        long last = -1;
        for (int stable = 0, i = 0; stable < 3 && i < 100; i++) {
            System.gc();
            Thread.sleep(30);
            long now = Torch.reclaimedTensorCount();
            stable = now == last ? stable + 1 : 0;
            last = now;
        }
    }

    private static void openAndDropAScopeWithATensor() {
        TensorScope.open();
        Tensor.ones(3);
    }

    @Test
    void noGradScopesClosedOutOfOrderLeaveTheThreadInTheModeItHadBefore() {
        assertTrue(Torch.isGradEnabled());
        NoGradScope outer = Torch.noGrad();
        NoGradScope inner = Torch.noGrad();
        var e = assertThrows(IllegalStateException.class, outer::close);
        assertTrue(e.getMessage().contains("innermost"), e.getMessage());
        assertTrue(Torch.isGradEnabled());
        inner.close(); // closed with outer: a no-op, which must not disable grad mode again
        assertTrue(Torch.isGradEnabled());
        try (NoGradScope again = Torch.noGrad()) {
            assertFalse(Torch.isGradEnabled());
        }
        assertTrue(Torch.isGradEnabled());
    }

    @Test
    void aDroppedNoGradScopeStopsDisablingGradientsOnceCollected() throws InterruptedException {
        assertTrue(Torch.isGradEnabled());
        Torch.noGrad(); // opened and dropped: a forgotten try-with-resources
        assertFalse(Torch.isGradEnabled());
        for (int i = 0; i < 200 && !Torch.isGradEnabled(); i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertTrue(Torch.isGradEnabled(), "a dropped no-grad scope left the thread without gradients");
        Tensor w = Tensor.ones(2).requiresGrad_(true);
        try (Tensor y = w.mul(w).sum()) {
            assertTrue(y.requiresGrad());
        }
        w.close();
    }

    /** poll(fds, 0, ms): sleeps for ms while holding fds, a native argument, "in use". */
    private static final MethodHandle POLL = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("poll").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

    /** Starts a thread that passes {@code view} to a native call for {@code ms}; returns it once the call began. */
    private static Thread holdInNativeCall(MemorySegment view, int ms) throws InterruptedException {
        CountDownLatch started = new CountDownLatch(1);
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                started.countDown();
                int unused = (int) POLL.invokeExact(view, 0L, ms);
            } catch (Throwable e) {
                throw new AssertionError(e);
            }
        });
        started.await();
        Thread.sleep(100);
        return t;
    }

    @Test
    void aCloseRefusedBecauseAViewIsInUseLeavesTheTensorOpenAndClosable() throws Exception {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 4);
        Thread holder = holdInNativeCall(t.data(), 1500);
        var e = assertThrows(IllegalStateException.class, t::close);
        assertTrue(e.getMessage().contains("view"), e.getMessage());
        assertFalse(t.isClosed());
        try (Tensor sum = t.sum()) {
            assertEquals(10.0, sum.item()); // still fully usable
        }
        holder.join();
        t.close();
        assertTrue(t.isClosed());
    }

    @Test
    void aScopeWhoseTensorCannotCloseStillFreesTheOthersAndHandsThatOneToTheSafetyNet() throws Exception {
        TensorScope scope = TensorScope.open();
        Tensor other = Tensor.ones(3);
        Tensor viewed = Tensor.of(new float[] {5, 6}, 2);
        Thread holder = holdInNativeCall(viewed.data(), 1500);
        assertThrows(IllegalStateException.class, scope::close);
        assertTrue(other.isClosed());
        assertFalse(viewed.isClosed());
        holder.join();
        // The scope no longer owns it and later tensors do not join the closed scope.
        try (Tensor later = Tensor.ones(1)) {
            assertEquals(1.0, later.item());
        }
        try (Tensor sum = viewed.sum()) {
            assertEquals(11.0, sum.item());
        }
        viewed.close();
    }
}
