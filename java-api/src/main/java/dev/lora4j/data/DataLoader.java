package dev.lora4j.data;

import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Random;

/**
 * Batches of a {@link TensorDataset}, as PyTorch's {@code DataLoader}: a fixed batch size,
 * optional shuffling (a new permutation each pass, reproducible from the seed), and
 * {@code dropLast} to skip a final short batch. Each batch belongs to the caller: close it
 * (try-with-resources) after use.
 *
 * <p>In data-parallel training a {@link DistributedSampler} chooses the rank's indices instead
 * (and their order): see {@link #DataLoader(TensorDataset, int, DistributedSampler, boolean)}.
 *
 * <p>Each {@link #iterator()} is one pass (epoch); iterators are not thread-safe.
 *
 * <p>Cost: a batch is one small index copy and one {@code index_select} per tensor (a view when
 * not shuffled). Take it inside the training step's {@link dev.lora4j.TensorScope}, so that its
 * tensors belong to that scope and are freed with the step's temporaries:
 *
 * <pre>{@code
 * for (Iterator<Batch> it = loader.iterator(); it.hasNext(); ) {
 *     try (TensorScope step = TensorScope.open()) {
 *         Batch b = it.next();
 *         ...
 *     }
 * }
 * }</pre>
 *
 * A batch taken outside every scope is owned by nobody until closed: correct too (close it),
 * but each of its tensors is then registered with the safety net and counted against the
 * native-memory budget, which costs a few native calls more per batch.
 */
public final class DataLoader implements Iterable<Batch> {

    private final TensorDataset dataset;
    private final int batchSize;
    private final boolean shuffle;
    private final boolean dropLast;
    private final Random random;
    private final DistributedSampler sampler;

    DataLoader(TensorDataset dataset, int batchSize, boolean shuffle, long seed, boolean dropLast) {
        this(dataset, batchSize, shuffle, seed, dropLast, null);
    }

    /**
     * Batches of the samples {@code sampler} picks for this rank, in its order, as PyTorch's
     * {@code DataLoader(dataset, batch_size, sampler=DistributedSampler(...))}; call
     * {@link DistributedSampler#setEpoch(long)} before each pass to reshuffle.
     *
     * @param dropLast skip a final batch shorter than {@code batchSize}
     */
    public DataLoader(TensorDataset dataset, int batchSize, DistributedSampler sampler, boolean dropLast) {
        this(dataset, batchSize, false, 0, dropLast, Objects.requireNonNull(sampler, "sampler"));
    }

    private DataLoader(TensorDataset dataset, int batchSize, boolean shuffle, long seed, boolean dropLast,
            DistributedSampler sampler) {
        Objects.requireNonNull(dataset, "dataset");
        if (batchSize < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
        if (sampler != null && sampler.datasetSize() != dataset.size())
            throw new IllegalArgumentException("sampler is for " + sampler.datasetSize() + " samples, the dataset has " + dataset.size());
        this.dataset = dataset;
        this.batchSize = batchSize;
        this.shuffle = shuffle;
        this.dropLast = dropLast;
        this.random = new Random(seed);
        this.sampler = sampler;
    }

    /** Number of batches in one pass. */
    public long numBatches() {
        long n = sampler != null ? sampler.numSamples() : dataset.size();
        return dropLast ? n / batchSize : (n + batchSize - 1) / batchSize;
    }

    public int batchSize() {
        return batchSize;
    }

    @Override
    public Iterator<Batch> iterator() {
        long[] order = sampler != null ? sampler.indices() : shuffle ? permutation(dataset.size()) : null;
        long n = order != null ? order.length : dataset.size();
        long batches = numBatches();
        return new Iterator<>() {
            private long next;

            @Override
            public boolean hasNext() {
                return next < batches;
            }

            @Override
            public Batch next() {
                if (!hasNext()) throw new NoSuchElementException();
                long start = next++ * batchSize;
                long len = Math.min(batchSize, n - start);
                if (order == null) return dataset.slice(start, len);
                return dataset.batch(order, (int) start, (int) len);
            }
        };
    }

    private long[] permutation(long n) {
        synchronized (random) {
            return permutation(n, random);
        }
    }

    /** A Fisher-Yates shuffle of 0..n-1 drawn from {@code random} (shared with {@link DistributedSampler}). */
    static long[] permutation(long n, Random random) {
        long[] p = new long[Math.toIntExact(n)];
        for (int i = 0; i < p.length; i++) p[i] = i;
        for (int i = p.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            long t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
