package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.nn.Functional;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every bad input a user can produce gives a clear Java exception naming the problem, and
 * the JVM keeps working afterwards (checked after every test by a real computation).
 */
class BadInputTest {

    private TensorScope scope;

    @BeforeEach
    void open() {
        scope = TensorScope.open();
    }

    @AfterEach
    void stillHealthy() {
        scope.close();
        try (TensorScope s = TensorScope.open()) {
            Tensor m = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
            assertArrayEquals(new float[] {7, 10, 15, 22}, m.matmul(m).toFloatArray());
        }
    }

    private static <T extends Throwable> String message(Class<T> type, Executable e) {
        String msg = assertThrows(type, e).getMessage();
        assertNotNull(msg);
        return msg;
    }

    @Test
    void shapeMismatchInLibTorchIsATorchExceptionWithTheOpName() {
        Tensor a = Tensor.ones(2, 3);
        Tensor b = Tensor.ones(4, 5);
        TorchException e = assertThrows(TorchException.class, () -> a.matmul(b));
        assertEquals("matmul", e.operation());
        assertTrue(e.nativeMessage().contains("cannot be multiplied"), e.nativeMessage());
        assertFalse(e.getMessage().contains("Exception raised from"), "no C++ backtrace: " + e.getMessage());
        TorchException add = assertThrows(TorchException.class, () -> a.add(b));
        assertTrue(add.getMessage().startsWith("add: "), add.getMessage());
        assertTrue(add.getMessage().contains("must match"), add.getMessage());
    }

    @Test
    void shapeMismatchCaughtInJavaNamesTheArgument() {
        Tensor x = Tensor.ones(2, 3);
        Tensor w = Tensor.ones(4, 5);
        assertTrue(message(IllegalArgumentException.class, () -> Functional.linear(x, w, null)).contains("in_features"));
        assertTrue(message(IllegalArgumentException.class, () -> x.mm(w)).contains("cannot be multiplied"));
        Tensor bias = Tensor.ones(3);
        assertTrue(message(IllegalArgumentException.class,
                () -> Functional.linear(x, Tensor.ones(4, 3), bias)).contains("bias"));
        assertTrue(message(IllegalArgumentException.class,
                () -> Functional.mseLoss(Tensor.ones(3), Tensor.ones(4))).contains("same shape"));
        assertTrue(message(IllegalArgumentException.class,
                () -> Functional.conv2d(Tensor.ones(3, 5), Tensor.ones(2, 3, 3, 3), null)).contains("input"));
    }

    @Test
    void reshapeToTheWrongSizeIsATorchException() {
        TorchException e = assertThrows(TorchException.class, () -> Tensor.ones(2, 3).reshape(7));
        assertTrue(e.getMessage().contains("invalid for input of size 6"), e.getMessage());
    }

    @Test
    void dtypeMismatch() {
        Tensor f32 = Tensor.ones(2, 2);
        Tensor f64 = Tensor.ones(DType.FLOAT64, 2, 2);
        TorchException e = assertThrows(TorchException.class, () -> f32.matmul(f64));
        assertTrue(e.getMessage().toLowerCase().contains("dtype") || e.getMessage().contains("Double"), e.getMessage());
        Tensor logits = Tensor.ones(2, 3);
        assertTrue(message(IllegalArgumentException.class,
                () -> Functional.crossEntropy(logits, Tensor.of(new float[] {0, 1}, 2))).contains("int64"));
        assertTrue(message(IllegalArgumentException.class,
                () -> Functional.embedding(Tensor.of(new float[] {0}, 1), Tensor.ones(3, 2))).contains("int64"));
        assertTrue(message(IllegalArgumentException.class,
                () -> Tensor.arange(3).requiresGrad_(true)).contains("floating-point"));
    }

    @Test
    void nullArguments() {
        Tensor t = Tensor.ones(2);
        assertEquals("other", message(NullPointerException.class, () -> t.add((Tensor) null)));
        assertEquals("other", message(NullPointerException.class, () -> t.matmul(null)));
        assertEquals("dtype", message(NullPointerException.class, () -> t.to((DType) null)));
        assertEquals("shape", message(NullPointerException.class, () -> Tensor.zeros((long[]) null)));
        assertEquals("data", message(NullPointerException.class, () -> Tensor.of((float[]) null, 1)));
        assertEquals("input", message(NullPointerException.class, () -> Functional.linear(null, t, null)));
        assertTrue(message(NullPointerException.class, () -> Tensor.cat(java.util.Arrays.asList(t, null), 0))
                .contains("tensors[1]"));
    }

    /**
     * A value an integer tensor cannot hold is refused, never wrapped: 2^63 is one past int64's
     * largest value, and LibTorch's own check lets it through (it compares with (double)
     * INT64_MAX, which rounds to 2^63) into a conversion that gave -2^63.
     */
    @Test
    void valuesOutsideAnIntegerDtypeAreRefused() {
        double twoTo63 = 9.223372036854775807E18; // == 2^63 as a double
        try (Tensor t = Tensor.zeros(DType.INT64, 2)) {
            for (double v : new double[] {twoTo63, -1.5 * twoTo63, 1e300}) {
                assertThrows(TorchException.class, () -> t.fill_(v), "fill_ " + v);
                assertThrows(TorchException.class, () -> Tensor.full(DType.INT64, v, 2), "full " + v);
            }
            assertArrayEquals(new long[] {0, 0}, t.toLongArray(), "nothing was written");
            t.fill_(-twoTo63); // -2^63 is int64's smallest value: exact
            assertArrayEquals(new long[] {Long.MIN_VALUE, Long.MIN_VALUE}, t.toLongArray());
            t.fill_(9.223372036854774784E18); // the largest double below 2^63
            assertArrayEquals(new long[] {9223372036854774784L, 9223372036854774784L}, t.toLongArray());
        }
        try (TensorScope s = TensorScope.open()) { // operands are not stored values: promoted or kept integral, as before
            Tensor big = Tensor.zeros(DType.INT64, 1).add(1e300);
            assertTrue(big.dtype().isFloatingPoint() && Double.isInfinite(big.toDoubleArray()[0]), big.dtype().toString());
            Tensor u8 = Tensor.full(DType.UINT8, 5, 1).add(-1.0);
            assertEquals(DType.UINT8, u8.dtype());
            assertEquals(4, u8.toLongArray()[0]);
        }
        try (Tensor t = Tensor.zeros(DType.UINT8, 1)) { // as PyTorch: -255..-1 wrap, beyond is refused
            t.fill_(-1);
            assertEquals(255, t.toLongArray()[0]);
            assertThrows(TorchException.class, () -> t.fill_(-256));
            assertThrows(TorchException.class, () -> t.fill_(256));
        }
        try (Tensor t = Tensor.zeros(DType.INT32, 1)) {
            assertThrows(TorchException.class, () -> t.fill_(2147483648.0));
            t.fill_(-2147483648.0);
            assertEquals(Integer.MIN_VALUE, t.toIntArray()[0]);
        }
    }

    @Test
    void negativeDimensions() {
        assertTrue(message(IllegalArgumentException.class, () -> Tensor.zeros(2, -1)).contains("negative"));
        assertTrue(message(IllegalArgumentException.class, () -> Tensor.empty(DType.INT64, -5)).contains("negative"));
        assertTrue(message(IllegalArgumentException.class, () -> Tensor.ones(2, 2).view(-2, 2)).contains("negative"));
        assertTrue(message(IllegalArgumentException.class, () -> Tensor.zeros(Long.MAX_VALUE, 4)).contains("too many"));
        assertTrue(message(IllegalArgumentException.class,
                () -> Tensor.of(new float[] {1, 2, 3}, 2, 2)).contains("bytes"));
    }

    @Test
    void outOfRangeIndices() {
        Tensor weight = Tensor.ones(3, 2);
        TorchException e = assertThrows(TorchException.class,
                () -> Functional.embedding(Tensor.of(new long[] {0, 7}, 2), weight));
        assertEquals(TorchException.Kind.INDEX, e.kind());
        assertTrue(e.getMessage().contains("out of range"), e.getMessage());
        Tensor t = Tensor.ones(2, 3);
        assertEquals(TorchException.Kind.INDEX,
                assertThrows(TorchException.class, () -> t.transpose(0, 5)).kind());
        assertTrue(message(IndexOutOfBoundsException.class, () -> t.size(2)).contains("out of range"));
        assertThrows(TorchException.class, () -> t.narrow(1, 2, 5));
        assertThrows(TorchException.class, () -> t.indexSelect(0, Tensor.of(new long[] {3}, 1)));
        assertThrows(TorchException.class, () -> Functional.crossEntropy(t, Tensor.of(new long[] {0, 9}, 2)));
        assertTrue(message(IndexOutOfBoundsException.class,
                () -> Functional.embedding(Tensor.of(new long[] {0}, 1), weight, 3)).contains("paddingIdx"));
    }

    @Test
    void badOptionValues() {
        Tensor t = Tensor.ones(4);
        assertThrows(IllegalArgumentException.class, () -> Functional.dropout(t, 1.5, true));
        assertThrows(IllegalArgumentException.class, () -> t.gelu("fast"));
        assertThrows(IllegalArgumentException.class, () -> Tensor.arange(0, 1, 0, DType.FLOAT32));
        assertThrows(IllegalArgumentException.class, () -> Torch.setNumThreads(0));
        assertThrows(IllegalArgumentException.class, () -> Tensor.cat(List.of(), 0));
        assertThrows(IllegalArgumentException.class,
                () -> Functional.conv2d(Tensor.ones(1, 2, 4, 4), Tensor.ones(2, 2, 3, 3), null, 0, 0, 1, 1));
    }

    @Test
    void backwardWithoutGraphAndOnNonScalar() {
        Tensor x = Tensor.ones(3);
        TorchException e = assertThrows(TorchException.class, x::backward);
        assertTrue(e.getMessage().contains("does not require grad"), e.getMessage());
        Tensor y = Tensor.ones(3).requiresGrad_(true).mul(2.0);
        assertTrue(assertThrows(TorchException.class, y::backward).getMessage().contains("scalar"));
    }

    @Test
    void itemOfManyElements() {
        assertThrows(TorchException.class, () -> Tensor.ones(2).item());
    }

    @Test
    void cudaOnACpuOnlyLibTorchIsAClearError() {
        if (Torch.cudaAvailable()) return;
        String msg = message(IllegalStateException.class, () -> Torch.device("cuda"));
        assertTrue(msg.contains("CUDA is not available"), msg);
        TorchException e = assertThrows(TorchException.class, () -> Tensor.ones(1).to(Device.cuda(0)));
        assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Device.parse("tpu"));
    }

    @Test
    void nativeOutOfMemoryIsAJavaException() {
        // 2^40 floats = 4 TiB: more than this machine has.
        TorchException e = assertThrows(TorchException.class, () -> Tensor.empty(1L << 40));
        assertEquals(TorchException.Kind.OUT_OF_MEMORY, e.kind(), e.getMessage());
    }
}
