package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Creation, queries, conversions and data round trips. */
@ExtendWith(ScopePerTest.class)
class TensorDataTest {


    @Test
    void arraysRoundTripBitExactForEveryJavaType() {
        float[] f = {1.5f, -0f, Float.NaN, Float.MIN_VALUE, Float.MAX_VALUE, 3};
        assertArrayEquals(f, Tensor.of(f, 2, 3).toFloatArray());
        double[] d = {Math.PI, -1e300, Double.NEGATIVE_INFINITY};
        assertArrayEquals(d, Tensor.of(d, 3).toDoubleArray());
        long[] l = {Long.MIN_VALUE, 0, Long.MAX_VALUE, 42};
        assertArrayEquals(l, Tensor.of(l, 2, 2).toLongArray());
        int[] i = {Integer.MIN_VALUE, 7};
        assertArrayEquals(i, Tensor.of(i, 2).toIntArray());
        byte[] b = {0, 1, (byte) 255};
        assertArrayEquals(b, Tensor.of(b, 3).toByteArray());
        Tensor bools = Tensor.of(new boolean[] {true, false, true}, 3);
        assertEquals(DType.BOOL, bools.dtype());
        assertArrayEquals(new byte[] {1, 0, 1}, bools.toByteArray());
    }

    @Test
    void shapeStridesDtypeDevice() {
        Tensor t = Tensor.zeros(DType.FLOAT64, 2, 3, 4);
        assertArrayEquals(new long[] {2, 3, 4}, t.shape());
        assertArrayEquals(new long[] {12, 4, 1}, t.stride());
        assertEquals(3, t.dim());
        assertEquals(24, t.numel());
        assertEquals(4, t.size(-1));
        assertEquals(DType.FLOAT64, t.dtype());
        assertEquals(Device.CPU, t.device());
        assertTrue(t.isContiguous());
        Tensor tt = t.transpose(0, 2);
        assertArrayEquals(new long[] {4, 3, 2}, tt.shape());
        assertArrayEquals(new long[] {1, 4, 12}, tt.stride());
        assertFalse(tt.isContiguous());
        assertEquals(0, Tensor.scalar(2.5, DType.FLOAT32).dim());
        assertEquals(2.5, Tensor.scalar(2.5, DType.FLOAT32).item());
    }

    @Test
    void factories() {
        assertArrayEquals(new float[] {0, 0}, Tensor.zeros(2).toFloatArray());
        assertArrayEquals(new float[] {1, 1}, Tensor.ones(2).toFloatArray());
        assertArrayEquals(new long[] {7, 7}, Tensor.full(DType.INT64, 7, 2).toLongArray());
        assertArrayEquals(new long[] {0, 1, 2, 3}, Tensor.arange(4).toLongArray());
        assertArrayEquals(new double[] {1, 1.5, 2, 2.5}, Tensor.arange(1, 3, 0.5, DType.FLOAT64).toDoubleArray());
        assertArrayEquals(new long[] {0}, Tensor.empty(0).shape());
        assertEquals(0, Tensor.empty(0, 5).toFloatArray().length);
        for (DType d : DType.values()) {
            Tensor z = Tensor.zeros(d, 3);
            assertEquals(d, z.dtype(), d.name());
        }
    }

    @Test
    void randomNumbersAreSeededAndHaveTheRightMoments() {
        Torch.manualSeed(7);
        float[] a = Tensor.randn(1000).toFloatArray();
        Torch.manualSeed(7);
        assertArrayEquals(a, Tensor.randn(1000).toFloatArray());
        Tensor n = Tensor.randn(DType.FLOAT64, 100_000);
        assertEquals(0, n.mean().item(), 0.02);
        assertEquals(1, n.pow(2).mean().item(), 0.02);
        Tensor u = Tensor.rand(DType.FLOAT64, 100_000);
        assertEquals(0.5, u.mean().item(), 0.01);
        assertTrue(u.max().item() < 1.0);
    }

    @Test
    void halfPrecisionConversionsRoundTrip() {
        float[] v = {1f, 0.5f, -2f, 1024f};
        for (DType d : List.of(DType.FLOAT16, DType.BFLOAT16)) {
            Tensor h = Tensor.of(v, 4).to(d);
            assertEquals(d, h.dtype());
            assertEquals(2, h.data().byteSize() / 4);
            assertArrayEquals(v, h.toFloatArray(), d.name());
        }
        // 1/3 is not exact in fp16: the conversion rounds to the nearest half.
        assertEquals(0.333251953125, Tensor.of(new float[] {1f / 3}, 1).to(DType.FLOAT16).toDoubleArray()[0], 0);
    }

    @Test
    void copyFromNativeAndHeapSegments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(ValueLayout.JAVA_DOUBLE, 6);
            for (int i = 0; i < 6; i++) seg.setAtIndex(ValueLayout.JAVA_DOUBLE, i, i * 1.5);
            Tensor t = Tensor.copyOf(seg, DType.FLOAT64, 2, 3);
            seg.setAtIndex(ValueLayout.JAVA_DOUBLE, 0, 99); // a copy: later writes do not show
            assertArrayEquals(new double[] {0, 1.5, 3, 4.5, 6, 7.5}, t.toDoubleArray());
        }
        MemorySegment heap = MemorySegment.ofArray(new int[] {4, 5, 6});
        assertArrayEquals(new int[] {4, 5, 6}, Tensor.copyOf(heap, DType.INT32, 3).toIntArray());
    }

    @Test
    void readBackConvertsAndHandlesNonContiguousData() {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3).t();
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, t.toFloatArray());
        assertArrayEquals(new long[] {1, 4, 2, 5, 3, 6}, t.toLongArray());
        assertArrayEquals(new double[] {1.5, -2.5}, Tensor.of(new float[] {1.5f, -2.5f}, 2).toDoubleArray());
    }

    @Test
    void elementwiseOpsAndScalars() {
        Tensor a = Tensor.of(new float[] {1, 4, 9}, 3);
        Tensor b = Tensor.of(new float[] {2, 2, 2}, 3);
        assertArrayEquals(new float[] {3, 6, 11}, a.add(b).toFloatArray());
        assertArrayEquals(new float[] {5, 8, 13}, a.add(b, 2).toFloatArray());
        assertArrayEquals(new float[] {-1, 2, 7}, a.sub(b).toFloatArray());
        assertArrayEquals(new float[] {2, 8, 18}, a.mul(b).toFloatArray());
        assertArrayEquals(new float[] {0.5f, 2, 4.5f}, a.div(b).toFloatArray());
        assertArrayEquals(new float[] {1, 2, 3}, a.sqrt().toFloatArray());
        assertArrayEquals(new float[] {1, 16, 81}, a.pow(2).toFloatArray());
        assertArrayEquals(new float[] {1, 16, 81}, a.pow(b).toFloatArray());
        assertArrayEquals(new float[] {-1, -4, -9}, a.neg().toFloatArray());
        assertArrayEquals(new float[] {1, 4, 9}, a.neg().abs().toFloatArray());
        assertArrayEquals(new float[] {0, 2, 3}, Tensor.of(new float[] {-1, 2, 3}, 3).relu().toFloatArray());
        assertArrayEquals(new float[] {11, 14, 19}, a.add(10).toFloatArray());
        assertArrayEquals(new float[] {0, 3, 8}, a.sub(1).toFloatArray());
        assertArrayEquals(new float[] {0.5f, 2, 4.5f}, a.div(2).toFloatArray());
        double x = 0.7;
        Tensor tx = Tensor.scalar(x, DType.FLOAT64);
        assertEquals(Math.exp(x), tx.exp().item(), 1e-15);
        assertEquals(Math.log(x), tx.log().item(), 1e-15);
        assertEquals(Math.tanh(x), tx.tanh().item(), 1e-15);
        assertEquals(1 / (1 + Math.exp(-x)), tx.sigmoid().item(), 1e-15);
        // GELU(x) = x·Φ(x); Φ(0.7) = 0.758036347776927 (erf tables).
        assertEquals(0.7 * 0.758036347776927, tx.gelu().item(), 1e-12);
        assertEquals(0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
                tx.gelu("tanh").item(), 1e-12);
        // Integer tensors stay integral with whole-number scalars.
        assertEquals(DType.INT64, Tensor.arange(3).add(2).dtype());
        assertArrayEquals(new long[] {2, 3, 4}, Tensor.arange(3).add(2).toLongArray());
    }

    @Test
    void inPlaceOps() {
        Tensor a = Tensor.ones(3);
        Tensor b = Tensor.of(new float[] {1, 2, 3}, 3);
        assertSame(a, a.add_(b));
        assertArrayEquals(new float[] {2, 3, 4}, a.toFloatArray());
        a.add_(b, -1).mul_(3.0);
        assertArrayEquals(new float[] {3, 3, 3}, a.toFloatArray());
        a.mul_(b).add_(1.0);
        assertArrayEquals(new float[] {4, 7, 10}, a.toFloatArray());
        a.copy_(Tensor.of(new double[] {9, 8, 7}, 3));
        assertArrayEquals(new float[] {9, 8, 7}, a.toFloatArray());
        a.zero_();
        assertArrayEquals(new float[] {0, 0, 0}, a.toFloatArray());
        a.fill_(5);
        assertArrayEquals(new float[] {5, 5, 5}, a.toFloatArray());
    }

    @Test
    void reductions() {
        Tensor t = Tensor.of(new float[] {1, 5, 3, 4, 2, 6}, 2, 3);
        assertEquals(21, t.sum().item());
        assertEquals(3.5, t.mean().item());
        assertArrayEquals(new float[] {5, 7, 9}, t.sum(0).toFloatArray());
        assertArrayEquals(new float[] {3, 4}, t.mean(1).toFloatArray());
        Tensor keep = t.sum(new int[] {1}, true);
        assertArrayEquals(new long[] {2, 1}, keep.shape());
        assertEquals(21, t.sum(new int[] {0, 1}, false).item());
        assertEquals(6, t.max().item());
        try (Tensor.MaxResult m = t.max(1, false)) {
            assertArrayEquals(new float[] {5, 6}, m.values().toFloatArray());
            assertArrayEquals(new long[] {1, 2}, m.indices().toLongArray());
        }
        assertArrayEquals(new long[] {1, 0, 1}, t.argmax(0).toLongArray());
        assertArrayEquals(new long[] {2, 1}, t.argmax(1, true).shape());
    }

    @Test
    void shapeOps() {
        Tensor t = Tensor.arange(0, 6, 1, DType.FLOAT32).reshape(2, 3);
        assertArrayEquals(new float[] {0, 3, 1, 4, 2, 5}, t.t().contiguous().toFloatArray());
        assertArrayEquals(new long[] {3, 2}, t.view(3, -1).shape());
        assertArrayEquals(new long[] {3, 2}, t.permute(1, 0).shape());
        assertArrayEquals(new float[] {1, 2, 4, 5}, t.narrow(1, 1, 2).toFloatArray());
        assertArrayEquals(new float[] {3, 4, 5, 0, 1, 2}, t.indexSelect(0, Tensor.of(new long[] {1, 0}, 2)).toFloatArray());
        assertArrayEquals(new long[] {1, 2, 3}, t.unsqueeze(0).shape());
        assertArrayEquals(new long[] {2, 3}, t.unsqueeze(0).squeeze(0).shape());
        assertArrayEquals(new long[] {2, 3}, t.unsqueeze(2).squeeze().shape());
        assertArrayEquals(new long[] {4, 3}, Tensor.cat(List.of(t, t), 0).shape());
        assertArrayEquals(new long[] {2, 2, 3}, Tensor.stack(List.of(t, t), 0).shape());
        assertArrayEquals(new float[] {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, Tensor.cat(List.of(t, t), 1).toFloatArray());
        TorchException e = assertThrows(TorchException.class, () -> t.t().view(6));
        assertTrue(e.getMessage().contains("view"), e.getMessage());
    }

    @Test
    void comparisonsAndFiniteness() {
        Tensor a = Tensor.of(new float[] {1, 2}, 2);
        assertTrue(a.equal(Tensor.of(new float[] {1, 2}, 2)));
        assertFalse(a.equal(Tensor.of(new float[] {1, 2.0001f}, 2)));
        assertTrue(a.allclose(Tensor.of(new float[] {1, 2.0001f}, 2), 1e-3, 0));
        assertTrue(a.allFinite());
        assertFalse(Tensor.of(new float[] {1, Float.NaN}, 2).allFinite());
        assertFalse(Tensor.of(new float[] {Float.POSITIVE_INFINITY}, 1).allFinite());
        assertTrue(Tensor.arange(3).allFinite());
    }
}
