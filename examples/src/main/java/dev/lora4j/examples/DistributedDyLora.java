package dev.lora4j.examples;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.data.Batch;
import dev.lora4j.data.DataLoader;
import dev.lora4j.data.DistributedSampler;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.distributed.DistributedDataParallel;
import dev.lora4j.distributed.ProcessGroup;
import dev.lora4j.distributed.ReduceOp;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraController;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;
import java.io.IOException;
import java.time.Duration;
import java.util.Locale;

/**
 * Data-parallel DyLoRA fine-tuning: the Fashion-MNIST MLP of {@link FineTune} with DyLoRA adapters
 * (r_max 8) on its three layers, adapting to inverted images, on every rank of a
 * {@link ProcessGroup} joined from the environment ({@code MASTER_ADDR}, {@code MASTER_PORT},
 * {@code WORLD_SIZE}, {@code RANK}; start it with {@code scripts/run-distributed.sh N DistributedDyLora}).
 * Each rank reads its shard through a {@link DistributedSampler}; {@link DistributedDataParallel}
 * broadcasts rank 0's weights and averages the adapters' gradients after each backward; all ranks
 * draw the same DyLoRA rank per step (the controller's seed is shared).
 *
 * <p>The base is the seeded random MLP, not a pre-trained one: the program measures the
 * distributed training (see {@link DyLoraExperiment} for DyLoRA's accuracy). Rank 0 prints the
 * mean step time, the share of it spent in the gradient all-reduce, and a check that every rank
 * ends with the same adapter weights; the last line is machine-readable ({@code RESULT ...}).
 *
 * <p>Flags: {@code --steps N} (default 100) {@code --global-batch G} (split over the ranks, default
 * 256) {@code --limit N} (training images, default 20000) {@code --threads T} (intra-op threads
 * per rank, default 1) {@code --warmup W} (steps left out of the timing, default 10)
 * {@code --lr LR --seed S --timeout-seconds T}.
 */
public final class DistributedDyLora {

    private DistributedDyLora() {}

    public static void main(String[] args) throws IOException {
        Flags.check(args, java.util.List.of("--steps", "--global-batch", "--limit", "--warmup", "--lr", "--seed", "--threads", "--timeout-seconds"));
        int steps = Flags.intFlag(args, "--steps", 100);
        int globalBatch = Flags.intFlag(args, "--global-batch", 256);
        int limit = Flags.intFlag(args, "--limit", 20_000);
        int warmup = Flags.intFlag(args, "--warmup", 10);
        double lr = Flags.doubleFlag(args, "--lr", 1e-2);
        long seed = Flags.longFlag(args, "--seed", 0);
        Torch.setNumThreads(Flags.intFlag(args, "--threads", 1));
        try (ProcessGroup group = ProcessGroup.fromEnvironment(Duration.ofSeconds(Flags.intFlag(args, "--timeout-seconds", 300)))) {
            int world = group.worldSize(), rank = group.rank();
            if (globalBatch % world != 0) throw new IllegalArgumentException("--global-batch " + globalBatch + " is not a multiple of " + world + " ranks");
            int batch = globalBatch / world;
            try (TensorDataset data = invertedSubset(limit); Sequential model = seededMlp(seed + rank)) {
                DyLora.wrap(model, LoraConfig.of(8, 8));
                DyLoraController controller = DyLoraController.of(model, seed);
                DistributedDataParallel ddp = new DistributedDataParallel(model, group);
                long bucket = ddp.trainableParameters().stream().mapToLong(Tensor::numel).sum() * Float.BYTES;
                DistributedSampler sampler = new DistributedSampler(data.size(), world, rank, true, seed, true);
                DataLoader loader = new DataLoader(data, batch, sampler, true);
                long timedNanos = 0, commAtWarmup = 0;
                double lastLoss = Double.NaN;
                try (AdamW opt = new AdamW(ddp.trainableParameters(), lr)) {
                    int step = 0;
                    long t0 = System.nanoTime();
                    for (int epoch = 0; step < steps; epoch++) {
                        sampler.setEpoch(epoch);
                        for (Batch b : loader) {
                            if (step == steps) {
                                b.close(); // fetched, not used
                                break;
                            }
                            if (step == warmup) {
                                t0 = System.nanoTime();
                                commAtWarmup = ddp.communicationNanos();
                            }
                            try (b; TensorScope s = TensorScope.open()) {
                                opt.zeroGrad();
                                Tensor loss = crossEntropy(model.forward(b.inputs()), b.targets());
                                ddp.backward(loss);
                                controller.step(opt);
                                lastLoss = loss.item();
                            }
                            step++;
                        }
                    }
                    timedNanos = System.nanoTime() - t0;
                }
                int timed = steps - warmup;
                double stepMs = timedNanos / 1e6 / timed;
                double reduceMs = (ddp.communicationNanos() - commAtWarmup) / 1e6 / timed;
                double spread = replicaSpread(group, ddp);
                if (rank == 0) {
                    System.out.printf(Locale.ROOT, "%d ranks, batch %d per rank (%d global), %d timed steps: %.1f ms per step,"
                            + " gradient all-reduce %.2f ms (%.1f%%) of a %d-byte bucket; last loss %.4f;"
                            + " adapter weights equal on all ranks: max deviation %.2e%n",
                            world, batch, globalBatch, timed, stepMs, reduceMs, 100 * reduceMs / stepMs, bucket, lastLoss, spread);
                    System.out.printf(Locale.ROOT, "RESULT world=%d batch=%d step_ms=%.3f allreduce_ms=%.3f share=%.4f bucket_bytes=%d%n",
                            world, batch, stepMs, reduceMs, reduceMs / stepMs, bucket);
                }
            }
        }
    }

    /** The largest difference between this rank's adapter weights and their mean over the ranks. */
    private static double replicaSpread(ProcessGroup group, DistributedDataParallel ddp) {
        try (TensorScope s = TensorScope.open()) {
            double max = 0;
            for (Tensor p : ddp.trainableParameters()) {
                Tensor mean = p.detach().clone();
                group.allReduce(ReduceOp.AVG, mean);
                max = Math.max(max, mean.sub(p.detach()).abs().max().item());
            }
            return max;
        }
    }

    private static Sequential seededMlp(long seed) {
        Torch.manualSeed(seed);
        return FineTune.mlp();
    }

    private static TensorDataset invertedSubset(int limit) throws IOException {
        try (TensorDataset train = FashionMnist.train(); Batch first = train.slice(0, Math.min(limit, train.size()))) {
            try (TensorScope s = TensorScope.open()) {
                return new TensorDataset(first.inputs().neg().add(1.0).keep(), first.targets().clone().keep());
            }
        }
    }
}
