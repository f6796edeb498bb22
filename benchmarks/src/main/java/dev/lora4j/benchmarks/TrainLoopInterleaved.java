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
import java.util.StringJoiner;

/**
 * (g) against (d) measured side by side: the MLP step on a fixed batch, the demo's loop with the
 * batch taken inside the step's scope, and with the batch taken outside it (the demo's old way),
 * interleaved in blocks of steps in one JVM (the order rotating each round), each on its own
 * model. The machine's speed drifts by tens of percent over seconds (other tenants of the host
 * share its memory bandwidth, and the MLP's Adam update is bound by it), so (g) and (d) measured
 * by JMH one after the other differ by that drift; interleaved blocks see the same machine, and
 * their per-round ratio is what the loop adds to the step. Reports wall time (what the user
 * waits for, and at two threads the only fair measure) and the training thread's CPU time.
 *
 * <p>Prints a table and, for {@code benchmarks/run-all.sh}'s report, one line
 * {@code RESULT loop_over_step THREADS r1 r2 ...}: the per-round wall-time ratios of (g) (batch
 * inside the scope) to (d).
 *
 * <p>With {@code parts} as the fourth argument, two more variants take (g)'s additions apart: (d)
 * without the loss read back, and (d) with a batch gathered (and not used) each step.
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.TrainLoopInterleaved [rounds] [steps-per-block] [threads] [parts]}
 */
public final class TrainLoopInterleaved {

    private TrainLoopInterleaved() {}

    private static final String[] NAMES = {"(d) fixed batch", "(g) batch inside the scope", "(g) batch outside the scope",
        "(d) without the loss read", "(d) + a batch gathered, unused"};

    public static void main(String[] args) throws IOException {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        int per = args.length > 1 ? Integer.parseInt(args[1]) : 50;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        int variants = args.length > 3 && args[3].equals("parts") ? NAMES.length : 3;
        ThreadMXBean tm = ManagementFactory.getThreadMXBean();
        Lora4jWork.threads(threads);
        try (TensorDataset data = Lora4jLoop.load(Lora4jLoop.TRAIN_IMAGES); Tensor x = Tensor.randn(Lora4jWork.BATCH, Lora4jWork.IN)) {
            Tensor[] y = Lora4jWork.labels();
            Sequential[] models = new Sequential[variants];
            Adam[] adams = new Adam[variants];
            for (int i = 0; i < variants; i++) {
                models[i] = Lora4jWork.mlp();
                adams[i] = new Adam(models[i].trainableParameters(), 1e-3);
            }
            Iterator<Batch> batches = null;
            long epochSeed = 0;
            long[][] cpu = new long[variants][rounds];
            long[][] wall = new long[variants][rounds];
            int step = 0;
            for (int r = -1; r < rounds; r++) { // round -1: warm-up, not counted
                for (int k = 0; k < variants; k++) {
                    int w = (k + Math.max(r, 0)) % variants;
                    long c0 = tm.getCurrentThreadCpuTime();
                    long w0 = System.nanoTime();
                    for (int i = 0; i < per; i++) {
                        if ((w == 1 || w == 2 || w == 4) && (batches == null || !batches.hasNext())) {
                            batches = data.loader(Lora4jWork.BATCH, true, epochSeed++, true).iterator();
                        }
                        switch (w) {
                            case 0 -> {
                                try (TensorScope scope = TensorScope.open()) {
                                    step(models[0], adams[0], x, y[step++ & 1], true);
                                }
                            }
                            case 1 -> {
                                try (TensorScope scope = TensorScope.open()) {
                                    Batch b = batches.next();
                                    step(models[1], adams[1], b.inputs(), b.targets(), true);
                                }
                            }
                            case 2 -> {
                                try (Batch b = batches.next(); TensorScope scope = TensorScope.open()) {
                                    step(models[2], adams[2], b.inputs(), b.targets(), true);
                                }
                            }
                            case 3 -> {
                                try (TensorScope scope = TensorScope.open()) {
                                    step(models[3], adams[3], x, y[step++ & 1], false);
                                }
                            }
                            default -> {
                                try (TensorScope scope = TensorScope.open()) {
                                    batches.next();
                                    step(models[4], adams[4], x, y[step++ & 1], true);
                                }
                            }
                        }
                    }
                    if (r < 0) continue;
                    cpu[w][r] = tm.getCurrentThreadCpuTime() - c0;
                    wall[w][r] = System.nanoTime() - w0;
                }
            }
            System.out.printf(Locale.ROOT, "%d intra-op thread(s), %d rounds of %d steps per variant%n", threads, rounds, per);
            report("wall", wall, per);
            report("CPU", cpu, per);
            StringJoiner line = new StringJoiner(" ", "RESULT loop_over_step " + threads + " ", "");
            for (double q : ratios(wall, 1)) line.add(String.format(Locale.ROOT, "%.4f", q));
            System.out.println(line);
            for (int i = 0; i < variants; i++) {
                adams[i].close();
                models[i].close();
            }
            y[0].close();
            y[1].close();
        }
    }

    /** Per round: variant {@code w}'s time over (d)'s. */
    private static double[] ratios(long[][] times, int w) {
        double[] q = new double[times[0].length];
        for (int r = 0; r < q.length; r++) q[r] = (double) times[w][r] / times[0][r];
        return q;
    }

    private static void report(String what, long[][] times, int per) {
        int rounds = times[0].length;
        for (int w = 0; w < times.length; w++) {
            long[] c = times[w].clone();
            Arrays.sort(c);
            System.out.printf(Locale.ROOT, "%-28s %-4s %.2f ms/step (median of %d blocks of %d; min %.2f)%n", NAMES[w], what,
                    c[rounds / 2] / 1e6 / per, rounds, per, c[0] / 1e6 / per);
        }
        for (int w = 1; w < times.length; w++) {
            double[] q = ratios(times, w);
            Arrays.sort(q);
            System.out.printf(Locale.ROOT, "%s / (d), %s per round: median %.3f, range %.3f .. %.3f%n", NAMES[w], what,
                    q[rounds / 2], q[0], q[rounds - 1]);
        }
    }

    /** One training step; {@code read}: the loss read back to the host, as the demo does. */
    private static double step(Sequential model, Adam adam, Tensor inputs, Tensor targets, boolean read) {
        adam.zeroGrad();
        Tensor loss = crossEntropy(model.forward(inputs), targets);
        loss.backward();
        adam.step();
        return read ? loss.item() : 0;
    }
}
