package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.nn.Conv2d;
import dev.lora4j.nn.Functional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Arguments that LibTorch keeps in narrower types than lora4j's API: out of range, they must be
 * a Java exception naming the argument, never a wrapped value (2^32 + 1 groups silently became
 * 1; 2^32 divided by zero and killed the JVM) or a half-built thread pool.
 */
@ExtendWith(ScopePerTest.class)
class NarrowedArgumentTest {

    @Test
    void convolutionGroupsBeyond32BitsAreRefused() {
        Tensor x = Tensor.ones(1, 2, 4, 4);
        Tensor w = Tensor.ones(2, 1, 1, 1);
        for (long groups : new long[] {1L << 32, (1L << 32) + 1, (1L << 32) + 2, Long.MAX_VALUE}) {
            var e = assertThrows(IllegalArgumentException.class, () -> Functional.conv2d(x, w, null, 1, 0, 1, groups));
            assertTrue(e.getMessage().contains("groups"), e.getMessage());
        }
        // In range, the same call is a real grouped convolution: each channel summed alone.
        assertArrayEquals(x.toFloatArray(), Functional.conv2d(x, w, null, 1, 0, 1, 2).toFloatArray());
    }

    @Test
    void convolutionStridePaddingDilationBeyond32BitsAreRefused() {
        Tensor x = Tensor.ones(1, 1, 4, 4);
        Tensor w = Tensor.ones(1, 1, 1, 1);
        long big = 1L << 32;
        assertThrows(IllegalArgumentException.class, () -> Functional.conv2d(x, w, null, big + 1, 0, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> Functional.conv2d(x, w, null, 1, big, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> Functional.conv2d(x, w, null, 1, 0, big + 1, 1));
    }

    @Test
    void convolutionModulesRefuseGroupsBeyond32Bits() {
        long g = 1L << 32;
        var e = assertThrows(IllegalArgumentException.class, () -> new Conv2d(g, g, 1, 1, 0, 1, g, false));
        assertTrue(e.getMessage().contains("groups"), e.getMessage());
    }

    @Test
    void threadCountsLibTorchCannotBuildAreRefused() {
        int before = Torch.getNumThreads();
        for (int n : new int[] {Torch.maxNumThreads() + 1, 5000, Integer.MAX_VALUE, 0, -1}) {
            var e = assertThrows(IllegalArgumentException.class, () -> Torch.setNumThreads(n));
            assertTrue(e.getMessage().contains("threads"), e.getMessage());
        }
        assertEquals(before, Torch.getNumThreads());
        assertEquals(6.0, Tensor.ones(2, 3).sum().item()); // the pool is intact
    }

    @Test
    void deviceIndicesBeyondLibTorchsEightBitsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Device.cuda(128));
        assertThrows(IllegalArgumentException.class, () -> Device.cuda(256));
        assertEquals(127, Device.cuda(127).index());
    }
}
