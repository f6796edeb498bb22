package dev.lora4j.data;

import java.util.Random;

/**
 * The indices one rank of a data-parallel job reads, as PyTorch's
 * {@code torch.utils.data.DistributedSampler}: the dataset's indices (shuffled with
 * {@code seed + epoch} when {@code shuffle}, the same permutation on every rank) are split so
 * that rank {@code r} of {@code n} takes positions {@code r, r + n, r + 2n, ...}. Every rank gets
 * the same number of samples: without {@code dropLast} the list is padded by repeating its first
 * indices, with it the tail that does not divide evenly is dropped. Call {@link #setEpoch(long)}
 * before each epoch to reshuffle. The permutation comes from {@link java.util.Random}, so it is
 * reproducible across lora4j ranks but not equal to PyTorch's.
 *
 * <p>Use with {@link DataLoader#DataLoader(TensorDataset, int, DistributedSampler, boolean)}.
 *
 * <p>Not thread-safe: {@link #setEpoch(long)} between epochs, from the training thread.
 */
public final class DistributedSampler {

    private final long datasetSize;
    private final int numReplicas;
    private final int rank;
    private final boolean shuffle;
    private final long seed;
    private final boolean dropLast;
    private long epoch;

    /**
     * @param datasetSize the number of samples (at most {@link Integer#MAX_VALUE})
     * @param numReplicas the world size
     * @param rank this rank, {@code 0 <= rank < numReplicas}
     */
    public DistributedSampler(long datasetSize, int numReplicas, int rank, boolean shuffle, long seed, boolean dropLast) {
        if (datasetSize < 0 || datasetSize > Integer.MAX_VALUE)
            throw new IllegalArgumentException("datasetSize must be in 0.." + Integer.MAX_VALUE + ", got " + datasetSize);
        if (numReplicas < 1) throw new IllegalArgumentException("numReplicas must be >= 1, got " + numReplicas);
        if (rank < 0 || rank >= numReplicas)
            throw new IllegalArgumentException("rank must be in 0.." + (numReplicas - 1) + ", got " + rank);
        if (dropLast && datasetSize < numReplicas)
            throw new IllegalArgumentException("with dropLast, datasetSize (" + datasetSize + ") must be >= numReplicas (" + numReplicas + ")");
        if (!dropLast && datasetSize == 0) throw new IllegalArgumentException("datasetSize is 0");
        this.datasetSize = datasetSize;
        this.numReplicas = numReplicas;
        this.rank = rank;
        this.shuffle = shuffle;
        this.seed = seed;
        this.dropLast = dropLast;
    }

    /** A shuffling sampler without {@code dropLast}, seed 0 (PyTorch's defaults). */
    public DistributedSampler(long datasetSize, int numReplicas, int rank) {
        this(datasetSize, numReplicas, rank, true, 0, false);
    }

    /** Selects the permutation of the next pass, as PyTorch's {@code set_epoch}. */
    public void setEpoch(long epoch) {
        this.epoch = epoch;
    }

    public long epoch() {
        return epoch;
    }

    /** The size of the dataset sampled. */
    public long datasetSize() {
        return datasetSize;
    }

    /** The number of samples of this rank per pass (the same on every rank). */
    public int numSamples() {
        return (int) (dropLast ? datasetSize / numReplicas : (datasetSize + numReplicas - 1) / numReplicas);
    }

    /** This rank's indices for the current epoch, in reading order. */
    public long[] indices() {
        int n = (int) datasetSize;
        long[] all;
        if (shuffle) {
            all = DataLoader.permutation(n, new Random(seed + epoch));
        } else {
            all = new long[n];
            for (int i = 0; i < n; i++) all[i] = i;
        }
        int per = numSamples();
        long[] mine = new long[per];
        for (int k = 0; k < per; k++) {
            long position = rank + (long) k * numReplicas; // < per * numReplicas: padded positions wrap around
            mine[k] = all[(int) (position % n)];
        }
        return mine;
    }
}
