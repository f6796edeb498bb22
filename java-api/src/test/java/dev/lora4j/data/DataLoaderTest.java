package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.TorchException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Batching: sizes, drop-last, seeded shuffling that visits every sample once, class filtering. */
class DataLoaderTest {

    /** Sample i has input [i, i] and target i % 3. */
    private static TensorDataset dataset(int n) {
        float[] x = new float[2 * n];
        long[] y = new long[n];
        for (int i = 0; i < n; i++) {
            x[2 * i] = i;
            x[2 * i + 1] = i;
            y[i] = i % 3;
        }
        return new TensorDataset(Tensor.of(x, n, 2), Tensor.of(y, n));
    }

    private static List<Long> order(DataLoader loader, List<Long> sizes) {
        List<Long> seen = new ArrayList<>();
        for (Batch b : loader) {
            try (b) {
                sizes.add(b.size());
                float[] x = b.inputs().toFloatArray();
                long[] y = b.targets().toLongArray();
                for (int i = 0; i < y.length; i++) {
                    assertEquals(x[2 * i], x[2 * i + 1]);
                    assertEquals((long) x[2 * i] % 3, y[i], "inputs and targets stay paired");
                    seen.add((long) x[2 * i]);
                }
            }
        }
        return seen;
    }

    @Test
    void sequentialBatchesAndDropLast() {
        try (TensorDataset d = dataset(10)) {
            List<Long> sizes = new ArrayList<>();
            assertEquals(List.of(0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L), order(d.loader(4, false, 0, false), sizes));
            assertEquals(List.of(4L, 4L, 2L), sizes);
            sizes.clear();
            assertEquals(8, order(d.loader(4, false, 0, true), sizes).size());
            assertEquals(List.of(4L, 4L), sizes);
            assertEquals(2, d.loader(4, true, 0, true).numBatches());
        }
    }

    @Test
    void shuffleVisitsEverySampleOnceAndIsReproducible() {
        try (TensorDataset d = dataset(50)) {
            List<Long> a = order(d.loader(7, true, 42, false), new ArrayList<>());
            List<Long> b = order(d.loader(7, true, 42, false), new ArrayList<>());
            assertEquals(a, b, "same seed, same order");
            assertNotEquals(a, order(d.loader(7, true, 43, false), new ArrayList<>()));
            assertEquals(50, a.stream().distinct().count());
            assertNotEquals(a.stream().sorted().toList(), a, "shuffled");
            DataLoader loader = d.loader(7, true, 1, false);
            assertNotEquals(order(loader, new ArrayList<>()), order(loader, new ArrayList<>()), "a new order each pass");
        }
    }

    @Test
    void batchesTakenInsideAScopeBelongToItAndLeaveNothingUnowned() {
        try (TensorDataset d = dataset(20)) {
            long unowned = Torch.unownedTensorBytes();
            List<Long> seen = new ArrayList<>();
            for (Iterator<Batch> it = d.loader(6, true, 3, false).iterator(); it.hasNext(); ) {
                Batch b;
                try (TensorScope step = TensorScope.open()) {
                    b = it.next();
                    // (the safety net may free leftovers of earlier tests meanwhile: the count can only fall)
                    assertTrue(Torch.unownedTensorBytes() <= unowned, "nothing of the batch (nor its index) is unowned");
                    float[] x = b.inputs().toFloatArray();
                    long[] y = b.targets().toLongArray();
                    for (int i = 0; i < y.length; i++) {
                        assertEquals((long) x[2 * i] % 3, y[i]);
                        seen.add((long) x[2 * i]);
                    }
                }
                assertTrue(b.inputs().isClosed() && b.targets().isClosed(), "the step's scope freed the batch");
            }
            assertEquals(20, seen.stream().distinct().count());
            assertEquals(order(d.loader(6, true, 3, false), new ArrayList<>()), seen, "same batches as taken outside a scope");
        }
    }

    @Test
    void batchByIndexTensor() {
        try (TensorDataset d = dataset(10); Tensor perm = Tensor.of(new long[] {7, 2, 9, 0}, 4);
             Tensor part = perm.narrow(0, 1, 2); Batch b = d.batch(part)) {
            assertArrayEquals(new float[] {2, 2, 9, 9}, b.inputs().toFloatArray());
            assertArrayEquals(new long[] {2, 0}, b.targets().toLongArray());
            try (Tensor matrix = Tensor.zeros(DType.INT64, 2, 2)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.batch(matrix));
                assertTrue(e.getMessage().contains("indices"), e.getMessage());
            }
            try (Tensor outside = Tensor.of(new long[] {3, 10}, 2)) {
                assertThrows(TorchException.class, () -> d.batch(outside));
            }
            assertThrows(NullPointerException.class, () -> d.batch((Tensor) null));
            assertEquals(10, d.size(), "still usable");
        }
    }

    @Test
    void filterClassesAndCounts() {
        try (TensorDataset d = dataset(10); TensorDataset only = d.filterClasses(1, 2)) {
            assertEquals(6, only.size());
            assertArrayEquals(new long[] {4, 3, 3}, d.classCounts(3));
            assertArrayEquals(new long[] {0, 3, 3}, only.classCounts(3));
        }
    }

    @Test
    void badArguments() {
        try (Tensor x = Tensor.zeros(3, 2); Tensor y = Tensor.zeros(4)) {
            assertThrows(IllegalArgumentException.class, () -> new TensorDataset(x, y));
        }
        try (TensorDataset d = dataset(3)) {
            assertThrows(IllegalArgumentException.class, () -> d.loader(0, false, 0, false));
        }
    }

    /** Samples start..start+length-1: negative starts do not count from the end, ranges past the end are refused. */
    @Test
    void sliceRefusesRangesOutsideTheDataset() {
        try (TensorDataset d = dataset(5)) {
            for (long[] bad : new long[][] {{-2, 2}, {1, -1}, {4, 3}, {6, 0}, {Long.MAX_VALUE, 2}}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.slice(bad[0], bad[1]).close(),
                        () -> "slice(" + bad[0] + ", " + bad[1] + ")");
                assertTrue(e.getMessage().contains("start") || e.getMessage().contains("length"), e.getMessage());
            }
            try (Batch b = d.slice(3, 2); Batch empty = d.slice(5, 0)) {
                assertArrayEquals(new long[] {0, 1}, b.targets().toLongArray());
                assertEquals(0, empty.size());
            }
        }
    }

    @Test
    void batchRefusesIndicesOutsideTheDataset() {
        try (TensorDataset d = dataset(5)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.batch(new long[] {0, -1}).close());
            assertTrue(e.getMessage().contains("indices[1]") && e.getMessage().contains("-1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> d.batch(new long[] {5}).close());
            assertTrue(e.getMessage().contains("indices[0]"), e.getMessage());
            try (Tensor negative = Tensor.of(new long[] {-1}, 1)) {
                assertThrows(RuntimeException.class, () -> d.batch(negative).close(), "no wrap-around to the last sample");
            }
        }
    }

    /** Classes are integers: float targets are not truncated, 2-D targets are not flattened. */
    @Test
    void filterClassesAndCountsNeedIntegerVectorTargets() {
        try (TensorDataset floats = new TensorDataset(Tensor.arange(4), Tensor.of(new float[] {0.5f, 1f, 1.7f, 2f}, 4))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> floats.filterClasses(1).close());
            assertTrue(e.getMessage().contains("targets") && e.getMessage().contains("FLOAT32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> floats.classCounts(3));
            assertTrue(e.getMessage().contains("targets"), e.getMessage());
        }
        try (TensorDataset matrix = new TensorDataset(Tensor.arange(8).reshape(4, 2), Tensor.of(new long[] {0, 1, 1, 0, 0, 1, 1, 1}, 4, 2))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> matrix.filterClasses(1).close());
            assertTrue(e.getMessage().contains("targets") && e.getMessage().contains("[4, 2]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> matrix.classCounts(2));
        }
        try (TensorDataset d = dataset(6)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.classCounts(-1));
            assertTrue(e.getMessage().contains("numClasses"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> d.classCounts(2));
            assertTrue(e.getMessage().contains("2") && e.getMessage().contains("numClasses"), "target 2 is not in 0..1: " + e.getMessage());
            assertThrows(NullPointerException.class, () -> d.filterClasses((long[]) null));
        }
    }
}
