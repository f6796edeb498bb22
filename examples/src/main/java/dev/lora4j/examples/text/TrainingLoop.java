package dev.lora4j.examples.text;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.optim.GradClip;
import dev.lora4j.optim.LRScheduler;
import dev.lora4j.optim.Optimizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * The fine-tuning loop of the text examples, as Hugging Face's Trainer runs it: per epoch a
 * shuffled order of the training rows (fixed by a seed, so another program can replay it, see
 * {@link #epochOrders}), batches of consecutive rows of that order (the last one may be smaller),
 * and per batch: zero the gradients, loss, backward, clip the gradient norm of all trainable
 * parameters, step every optimizer and its scheduler. A progress bar on stderr shows the
 * smoothed loss and the throughput in samples per second. Not thread-safe: one training thread.
 */
public final class TrainingLoop {

    /** The loss of a batch of training rows; a tensor the loop frees. */
    @FunctionalInterface
    public interface BatchLoss {
        Tensor loss(int[] rows);
    }

    /** One optimizer (a parameter group) and the scheduler that steps its learning rate. */
    public record Group(Optimizer optimizer, LRScheduler scheduler) {}

    /** What a run did: the loss of every step, wall time in seconds, steps and samples. */
    public record Log(List<Double> losses, double seconds, int steps, long samples) {
        public double stepsPerSecond() {
            return steps / seconds;
        }

        public double samplesPerSecond() {
            return samples / seconds;
        }
    }

    private TrainingLoop() {}

    /**
     * {@code epochs} permutations of {@code 0..n-1} drawn with {@code new Random(seed)}
     * (Fisher–Yates from the end, as {@link java.util.Collections#shuffle}).
     */
    public static int[][] epochOrders(int n, int epochs, long seed) {
        Random random = new Random(seed);
        int[][] out = new int[epochs][];
        for (int e = 0; e < epochs; e++) {
            int[] p = new int[n];
            for (int i = 0; i < n; i++) p[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
            out[e] = p;
        }
        return out;
    }

    /** Optimizer steps for {@code n} rows, {@code epochs} epochs, batches of {@code batch}. */
    public static int steps(int n, int epochs, int batch) {
        return epochs * ((n + batch - 1) / batch);
    }

    /**
     * Runs the loop over {@code orders} (one permutation per epoch). {@code clipParameters} are
     * clipped to a total gradient norm of {@code maxGradNorm} (0 for no clipping); a null
     * {@code task} shows no progress bar.
     */
    public static Log run(int[][] orders, int batch, List<Group> groups, List<Tensor> clipParameters, double maxGradNorm,
            BatchLoss batchLoss, String task) {
        if (batch < 1) throw new IllegalArgumentException("batch must be >= 1, got " + batch);
        int n = orders.length == 0 ? 0 : orders[0].length;
        int total = steps(n, orders.length, batch);
        List<Double> losses = new ArrayList<>(total);
        long samples = 0;
        double smoothed = Double.NaN;
        long t0 = System.nanoTime();
        ProgressBarBuilder builder = new ProgressBarBuilder().setTaskName(task).setInitialMax((long) n * orders.length)
                .setUnit(" samples", 1).showSpeed().setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500);
        try (ProgressBar bar = task == null ? null : builder.build()) {
            for (int[] order : orders) {
                for (int start = 0; start < n; start += batch) {
                    int[] rows = Arrays.copyOfRange(order, start, Math.min(n, start + batch));
                    double loss;
                    try (TensorScope scope = TensorScope.open()) {
                        for (Group g : groups) g.optimizer().zeroGrad();
                        Tensor l = batchLoss.loss(rows);
                        l.backward();
                        if (maxGradNorm > 0) GradClip.clipGradNorm_(clipParameters, maxGradNorm);
                        for (Group g : groups) {
                            g.optimizer().step();
                            g.scheduler().step();
                        }
                        loss = l.item();
                    }
                    losses.add(loss);
                    samples += rows.length;
                    smoothed = Double.isNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
                    if (bar != null) {
                        bar.stepBy(rows.length);
                        bar.setExtraMessage(String.format(Locale.ROOT, "loss %.3f, step %d/%d", smoothed, losses.size(), total));
                    }
                }
            }
        }
        return new Log(losses, (System.nanoTime() - t0) / 1e9, losses.size(), samples);
    }
}
