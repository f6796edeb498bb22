package dev.lora4j.benchmarks;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.data.Batch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Locale;

/**
 * (d) against (g) on a shared machine: the MLP step on a fixed batch, the demo's loop with the
 * batch taken inside the step's scope, and with the batch taken outside it (the demo's old
 * way), interleaved in blocks in one JVM (the order rotating each round), each on its own model,
 * measured in the training thread's CPU time, which other processes' load inflates far less
 * than wall time. Meaningful at one intra-op thread (the work runs on the calling thread).
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.TrainLoopCpuTime [rounds] [steps-per-block]}
 */
public final class TrainLoopCpuTime {

    private TrainLoopCpuTime() {}

    private static final String[] NAMES = {"(d) fixed batch", "(g) batch inside the scope", "(g) batch outside the scope"};

    public static void main(String[] args) throws IOException {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        int per = args.length > 1 ? Integer.parseInt(args[1]) : 50;
        ThreadMXBean tm = ManagementFactory.getThreadMXBean();
        Lora4jWork.threads(1);
        try (TensorDataset data = Lora4jLoop.load(Lora4jLoop.TRAIN_IMAGES); Tensor x = Tensor.randn(Lora4jWork.BATCH, Lora4jWork.IN)) {
            Tensor[] y = Lora4jWork.labels();
            Sequential[] models = {Lora4jWork.mlp(), Lora4jWork.mlp(), Lora4jWork.mlp()};
            Adam[] adams = new Adam[3];
            for (int i = 0; i < 3; i++) adams[i] = new Adam(models[i].trainableParameters(), 1e-3);
            Iterator<Batch> batches = null;
            long epochSeed = 0;
            long[][] cpu = new long[3][rounds];
            int step = 0;
            for (int r = 0; r < rounds; r++) {
                for (int k = 0; k < 3; k++) {
                    int w = (k + r) % 3;
                    long c0 = tm.getCurrentThreadCpuTime();
                    for (int i = 0; i < per; i++) {
                        if (w > 0 && (batches == null || !batches.hasNext())) {
                            batches = data.loader(Lora4jWork.BATCH, true, epochSeed++, true).iterator();
                        }
                        if (w == 0) {
                            try (TensorScope scope = TensorScope.open()) {
                                step(models[0], adams[0], x, y[step++ & 1]);
                            }
                        } else if (w == 1) {
                            try (TensorScope scope = TensorScope.open()) {
                                Batch b = batches.next();
                                step(models[1], adams[1], b.inputs(), b.targets());
                            }
                        } else {
                            try (Batch b = batches.next(); TensorScope scope = TensorScope.open()) {
                                step(models[2], adams[2], b.inputs(), b.targets());
                            }
                        }
                    }
                    cpu[w][r] = tm.getCurrentThreadCpuTime() - c0;
                }
            }
            for (int w = 0; w < 3; w++) {
                long[] c = cpu[w].clone();
                Arrays.sort(c);
                System.out.printf(Locale.ROOT, "%-28s CPU %.2f ms/step (median of %d blocks of %d; min %.2f)%n", NAMES[w],
                        c[rounds / 2] / 1e6 / per, rounds, per, c[0] / 1e6 / per);
            }
            for (int w = 1; w < 3; w++) {
                double[] ratio = new double[rounds];
                for (int r = 0; r < rounds; r++) ratio[r] = (double) cpu[w][r] / cpu[0][r];
                Arrays.sort(ratio);
                System.out.printf(Locale.ROOT, "%s / (d), per round: median %.3f, range %.3f .. %.3f%n", NAMES[w],
                        ratio[rounds / 2], ratio[0], ratio[rounds - 1]);
            }
            for (int i = 0; i < 3; i++) {
                adams[i].close();
                models[i].close();
            }
            y[0].close();
            y[1].close();
        }
    }

    private static double step(Sequential model, Adam adam, Tensor inputs, Tensor targets) {
        adam.zeroGrad();
        Tensor loss = crossEntropy(model.forward(inputs), targets);
        loss.backward();
        adam.step();
        return loss.item();
    }
}
