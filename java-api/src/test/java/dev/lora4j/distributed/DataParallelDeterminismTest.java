package dev.lora4j.distributed;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Data parallelism changes nothing but the speed: 2 ranks (child JVMs) with batch B each end with
 * the LoRA weights of 1 process with batch 2B, to float32 round-off. The ranks also check every
 * collective against closed forms first (sums and means over float32, float64 and int64 tensors
 * in one bucketed call, a broadcast from the last rank).
 */
class DataParallelDeterminismTest {

    static final int BATCH = 8;
    static final int STEPS = 6; // 4 steps per epoch: the sampler's reshuffle is crossed

    @Test
    @Timeout(600)
    void twoRanksWithBatchBMatchOneProcessWithBatch2B(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("weights.bin");
        int port = RankProcess.freePort();
        try (RankProcess r0 = RankProcess.start(List.of(), "127.0.0.1", port, 2, 0, dir, "train", out.toString(), "" + BATCH, "" + STEPS);
                RankProcess r1 = RankProcess.start(List.of(), "127.0.0.1", port, 2, 1, dir, "train", out.toString(), "" + BATCH, "" + STEPS)) {
            assertEquals(0, r0.await(Duration.ofMinutes(5)), r0.log());
            assertEquals(0, r1.await(Duration.ofMinutes(1)), r1.log());
        }
        assertMatchesOneProcess(TrainingJob.read(out));
    }

    /** Weights trained by 2 ranks with batch B equal one process's with batch 2B, and differ from batch B alone. */
    static void assertMatchesOneProcess(Map<String, float[]> distributed) {
        Map<String, float[]> single = TrainingJob.train(null, 2 * BATCH, STEPS);
        double diff = TrainingJob.maxDifference(distributed, single);
        System.out.println("2 ranks x batch " + BATCH + " vs 1 process x batch " + 2 * BATCH + ", " + STEPS + " steps: max abs difference " + diff);
        assertTrue(diff < 1e-5, "2 ranks x batch B vs 1 process x batch 2B: max |difference| " + diff);
        // The comparison can fail: other batches, or no training, give clearly different weights.
        double other = TrainingJob.maxDifference(TrainingJob.train(null, BATCH, STEPS), single);
        assertTrue(other > 1e-3, "batch B alone differs: " + other);
        double untrained = TrainingJob.maxDifference(TrainingJob.train(null, 2 * BATCH, 0), single);
        assertTrue(untrained > 1e-2, "training moved the weights: " + untrained);
    }
}
