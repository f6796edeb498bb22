package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

/**
 * {@link DistributedSampler} against PyTorch's rules, checked from the outside: the ranks' shards
 * interleave back into one permutation of the dataset (padded by wrapping around, or cut with
 * dropLast), the permutation is shared by all ranks and changes with the epoch, and the
 * {@link DataLoader} reads the shard in order.
 */
class DistributedSamplerTest {

    @Test
    void shardsInterleaveIntoOnePermutationSharedByAllRanks() {
        int n = 10, world = 3;
        long[][] shards = shards(n, world, 5, false);
        for (long[] s : shards) assertEquals(4, s.length); // ceil(10 / 3)
        long[] joined = interleave(shards);
        // The first n positions are a permutation of 0..n-1; the padding repeats its start.
        long[] head = Arrays.copyOf(joined, n);
        assertArrayEquals(LongStream.range(0, n).toArray(), Arrays.stream(head).sorted().toArray());
        assertArrayEquals(Arrays.copyOf(joined, joined.length - n), Arrays.copyOfRange(joined, n, joined.length));
        assertFalse(Arrays.equals(head, LongStream.range(0, n).toArray()), "shuffled");
        // With one replica the sampler is that permutation itself.
        assertArrayEquals(head, new DistributedSampler(n, 1, 0, true, 5, false).indices());
    }

    @Test
    void dropLastCutsTheTailAndNoShuffleKeepsTheOrder() {
        long[][] shards = shards(10, 3, 0, true);
        for (long[] s : shards) assertEquals(3, s.length);
        long[][] plain = new long[3][];
        for (int r = 0; r < 3; r++) plain[r] = new DistributedSampler(10, 3, r, false, 0, true).indices();
        assertArrayEquals(new long[] {0, 3, 6}, plain[0]);
        assertArrayEquals(new long[] {2, 5, 8}, plain[2]);
        assertEquals(9, Arrays.stream(interleave(shards)).distinct().count(), "no sample twice");
    }

    @Test
    void eachEpochHasItsOwnPermutationReproducibleFromTheSeed() {
        DistributedSampler a = new DistributedSampler(50, 2, 1, true, 9, false);
        long[] e0 = a.indices();
        a.setEpoch(1);
        long[] e1 = a.indices();
        assertFalse(Arrays.equals(e0, e1));
        DistributedSampler b = new DistributedSampler(50, 2, 1, true, 9, false);
        b.setEpoch(1);
        assertArrayEquals(e1, b.indices());
        assertArrayEquals(e1, a.indices(), "indices() does not advance anything");
    }

    @Test
    void theLoaderReadsTheShardInBatches() {
        int n = 7;
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = i;
        DistributedSampler sampler = new DistributedSampler(n, 2, 1, true, 3, false);
        long[] mine = sampler.indices();
        try (TensorDataset ds = new TensorDataset(Tensor.of(values, n, 1), Tensor.arange(0, n, 1, DType.INT64))) {
            DataLoader loader = new DataLoader(ds, 3, sampler, false);
            assertEquals(2, loader.numBatches()); // 4 samples: 3 + 1
            List<Long> seen = new ArrayList<>();
            for (Batch b : loader) {
                try (b) {
                    for (long t : b.targets().toLongArray()) seen.add(t);
                }
            }
            assertEquals(Arrays.stream(mine).boxed().toList(), seen);
            assertEquals(1, new DataLoader(ds, 3, sampler, true).numBatches());
            var wrong = assertThrows(IllegalArgumentException.class, () -> new DataLoader(ds, 3, new DistributedSampler(8, 2, 0), false));
            assertEquals("sampler is for 8 samples, the dataset has 7", wrong.getMessage());
        }
    }

    @Test
    void badArgumentsNameTheArgument() {
        assertThrows(IllegalArgumentException.class, () -> new DistributedSampler(10, 0, 0));
        var rank = assertThrows(IllegalArgumentException.class, () -> new DistributedSampler(10, 2, 2));
        assertEquals("rank must be in 0..1, got 2", rank.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new DistributedSampler(-1, 2, 0));
        assertThrows(IllegalArgumentException.class, () -> new DistributedSampler(1, 2, 0, true, 0, true));
        assertThrows(NullPointerException.class, () -> new DataLoader(null, 3, new DistributedSampler(8, 2, 0), false));
    }

    private static long[][] shards(int n, int world, long seed, boolean dropLast) {
        long[][] out = new long[world][];
        for (int r = 0; r < world; r++) out[r] = new DistributedSampler(n, world, r, true, seed, dropLast).indices();
        return out;
    }

    // Position k of rank r is position r + k·world of the padded permutation.
    private static long[] interleave(long[][] shards) {
        int world = shards.length, per = shards[0].length;
        long[] out = new long[world * per];
        for (int r = 0; r < world; r++) for (int k = 0; k < per; k++) out[r + k * world] = shards[r][k];
        return out;
    }
}
