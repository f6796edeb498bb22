package dev.lora4j.examples;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraController;
import dev.lora4j.dylora.DyLoraLayer;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * DyLoRA's claim, measured (Valipour et al., EACL 2023): one DyLoRA adapter trained once with
 * r_max = 8 against a separate LoRA trained for each rank 1..8, on the same fine-tuning task.
 *
 * <p>The task: the seed-000 MLP, pre-trained on Fashion-MNIST (cached as in {@link FineTune}),
 * must adapt to inverted images (1 − x), where it starts near chance. Every run adapts the
 * same three layers with the same steps, batch, optimizer (AdamW, learning rate decaying
 * linearly to 0) and α (scale α/rank); the
 * DyLoRA runs draw one rank per step uniformly from 1..8 and are evaluated at every rank:
 * nested mode (all rows up to b train; strict updates), the paper's frozen mode (only row b
 * trains; AdamW still moves the others, as in the official code) and frozen with strict
 * updates. Each is
 * then evaluated at every rank. Prints the table and writes a PNG of accuracy against rank.
 *
 * <p>Flags: {@code --steps N} (each LoRA run) {@code --dylora-steps N} (each DyLoRA run, default
 * the same) {@code --batch B --lr LR --alpha A --rmax R --seed S --out DIR --cache DIR}.
 */
public final class DyLoraExperiment {

    /** Per-rank accuracies and total training times of both approaches. */
    public record Result(double baseAccuracy, double[] loraAccuracy, double[] dyloraAccuracy, double loraSeconds,
                         double dyloraSeconds, List<double[]> variantAccuracy, List<Double> variantSeconds, Path plot) {}

    /** One way of training DyLoRA: nested (default), the paper's frozen, or frozen with strict updates. */
    record Variant(String name, DyLoraLayer.Mode mode, boolean strict) {}

    private DyLoraExperiment() {}

    public static void main(String[] args) throws IOException {
        Flags.check(args, java.util.List.of("--steps", "--dylora-steps", "--batch", "--lr", "--alpha", "--rmax", "--seed", "--limit", "--out", "--cache"));
        Torch.setNumThreads(Runtime.getRuntime().availableProcessors());
        Path home = Path.of(System.getProperty("user.home"));
        int steps = Flags.intFlag(args, "--steps", 600);
        Result r = run(steps, Flags.intFlag(args, "--dylora-steps", steps), Flags.intFlag(args, "--batch", 64),
                Flags.doubleFlag(args, "--lr", 1e-2), Flags.doubleFlag(args, "--alpha", 8), Flags.intFlag(args, "--rmax", 8),
                Flags.longFlag(args, "--seed", 0), Flags.intFlag(args, "--limit", 60_000),
                Path.of(orElse(Flags.flag(args, "--out"), "target/dylora")),
                Path.of(orElse(Flags.flag(args, "--cache"), home.resolve(".cache/lora4j").toString())), true);
        System.out.printf(Locale.ROOT, "%nplot saved to %s%n", r.plot().toAbsolutePath());
    }

    private static String orElse(String v, String def) {
        return v != null ? v : def;
    }

    public static Result run(int steps, int dyloraSteps, int batch, double lr, double alpha, int rMax, long seed,
                             int limit, Path out, Path cache, boolean verbose) throws IOException {
        Files.createDirectories(out);
        FineTune.Settings s = new FineTune.Settings(1, 10, 1e-3, 0, 1, 1, seed, limit, out, cache, verbose);
        FineTune.Settings adapt = new FineTune.Settings(1, batch, lr, 0, 1, alpha, seed, limit, out, cache, verbose);
        try (TensorDataset fullTrain = FashionMnist.train(); TensorDataset test = FashionMnist.test()) {
            TensorDataset train = limit < fullTrain.size() ? subset(fullTrain, limit) : fullTrain;
            Map<String, Tensor> base;
            try (Sequential model = FineTune.mlp()) {
                Torch.manualSeed(seed);
                FineTune.pretrain(s, model, train, new ArrayList<>());
                base = keepAll(model.stateDict());
            }
            try (TensorDataset invTrain = inverted(train); TensorDataset invTest = inverted(test)) {
                double baseAcc;
                try (Sequential model = FineTune.mlp()) {
                    model.loadStateDict(base, true);
                    baseAcc = accuracy(model, invTest);
                }
                say(verbose, "%nthe pre-trained model on inverted test images: accuracy %.4f%n", baseAcc);
                say(verbose, "each LoRA run: %d AdamW steps of %d inverted images, lr %s decaying linearly to 0, alpha %s (scale alpha/rank);"
                        + " each DyLoRA run: %d steps%n%n", steps, batch, lr, alpha, dyloraSteps);
                long items = (long) steps * batch;

                double[] lora = new double[rMax];
                double loraSeconds = 0;
                for (int r = 1; r <= rMax; r++) {
                    try (Sequential model = FineTune.mlp()) {
                        model.loadStateDict(base, true);
                        Lora.wrap(model, LoraConfig.of(r, alpha));
                        Torch.manualSeed(seed + r);
                        long t0 = System.nanoTime();
                        try (AdamW opt = new AdamW(model.trainableParameters(), lr)) {
                            FineTune.train(adapt, model, opt, invTrain, items, "LoRA r=" + r, null, linearDecay(lr, steps, o -> o.step()));
                        }
                        loraSeconds += (System.nanoTime() - t0) / 1e9;
                        lora[r - 1] = accuracy(model, invTest);
                    }
                }

                List<Variant> variants = List.of(new Variant("nested", DyLoraLayer.Mode.NESTED, true),
                        new Variant("frozen", DyLoraLayer.Mode.FROZEN, false), new Variant("frozen, strict", DyLoraLayer.Mode.FROZEN, true));
                List<double[]> dyAcc = new ArrayList<>();
                List<Double> dySeconds = new ArrayList<>();
                for (Variant v : variants) {
                    double[] acc = new double[rMax];
                    try (Sequential model = FineTune.mlp()) {
                        model.loadStateDict(base, true);
                        DyLora.wrap(model, LoraConfig.of(rMax, alpha));
                        DyLoraController ctl = DyLoraController.of(model, seed).mode(v.mode()).strict(v.strict());
                        Torch.manualSeed(seed);
                        long t0 = System.nanoTime();
                        try (AdamW opt = new AdamW(model.trainableParameters(), lr)) {
                            FineTune.train(adapt, model, opt, invTrain, (long) dyloraSteps * batch, "DyLoRA " + v.name(), null,
                                    linearDecay(lr, dyloraSteps, ctl::step));
                        }
                        dySeconds.add((System.nanoTime() - t0) / 1e9);
                        for (int r = 1; r <= rMax; r++) {
                            ctl.setRank(r);
                            acc[r - 1] = accuracy(model, invTest);
                        }
                    }
                    dyAcc.add(acc);
                }
                if (train != fullTrain) train.close();
                base.values().forEach(Tensor::close);

                say(verbose, "%n| rank | LoRA (one run per rank) |");
                variants.forEach(v -> say(verbose, " DyLoRA %s |", v.name()));
                say(verbose, "%n|---:|---:|%s%n", "---:|".repeat(variants.size()));
                for (int r = 1; r <= rMax; r++) {
                    say(verbose, "| %d | %.2f%% |", r, 100 * lora[r - 1]);
                    for (double[] acc : dyAcc) say(verbose, " %.2f%% (%+.2f) |", 100 * acc[r - 1], 100 * (acc[r - 1] - lora[r - 1]));
                    say(verbose, "%n");
                }
                say(verbose, "| training time | %.1f s (%d runs) |", loraSeconds, rMax);
                for (double t : dySeconds) say(verbose, " %.1f s (ratio %.3f) |", t, t / loraSeconds);
                say(verbose, "%n");
                Path plot = out.resolve("dylora.png");
                Plots.accuracyByRank(plot, lora, variants.stream().map(Variant::name).toList(), dyAcc, baseAcc);
                return new Result(baseAcc, lora, dyAcc.get(0), loraSeconds, dySeconds.get(0), dyAcc, dySeconds, plot);
            }
        }
    }

    /** Each update at a learning rate falling linearly from {@code lr} to 0 over {@code steps}. */
    private static java.util.function.Consumer<dev.lora4j.optim.Optimizer> linearDecay(
            double lr, int steps, java.util.function.Consumer<dev.lora4j.optim.Optimizer> step) {
        int[] t = {0};
        return opt -> {
            opt.setLr(lr * Math.max(0.0, 1.0 - (double) t[0]++ / steps));
            step.accept(opt);
        };
    }

    private static Map<String, Tensor> keepAll(Map<String, Tensor> m) {
        m.values().forEach(Tensor::keep);
        return m;
    }

    private static TensorDataset subset(TensorDataset d, long n) {
        try (var b = d.slice(0, n)) {
            return new TensorDataset(b.inputs().clone(), b.targets().clone());
        }
    }

    /** The same images with inverted intensities, 1 − x. */
    static TensorDataset inverted(TensorDataset d) {
        try (TensorScope s = TensorScope.open()) {
            return new TensorDataset(d.inputs().neg().add(1.0).keep(), d.targets().clone().keep());
        }
    }

    private static double accuracy(Sequential model, TensorDataset test) {
        long wrong = 0;
        for (long w : FineTune.wrongPerClass(model, test)) wrong += w;
        return 1.0 - (double) wrong / test.size();
    }

    private static void say(boolean verbose, String format, Object... args) {
        if (verbose) System.out.printf(Locale.ROOT, format, args);
    }
}
