package dev.lora4j.examples;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.data.Batch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.LoraParametrization;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Seed 000 on Fashion-MNIST: pre-train the MLP 784→1000→2000→10 for one epoch (batch 10,
 * Adam 1e-3), find the class it gets wrong most, add rank-1 LoRA parametrizations to its three
 * layers, freeze the base, fine-tune the adapters on that class alone for 100 batches, and
 * show every class's accuracy before and after; switch the adapters off and the original
 * accuracy comes back exactly. Saves the adapter (safetensors) and a PNG of the loss curve and
 * the per-class errors. The pre-trained model is cached, so a second run skips pre-training.
 *
 * <p>Flags: {@code --epochs E --batch B --lr LR --finetune-batches N --rank R --alpha A
 * --seed S --limit N (train samples) --out DIR --cache DIR}.
 */
public final class FineTune {

    /** What one run found, for tests and the README. */
    public record Result(int worstClass, long[] wrongBefore, long[] wrongAfter, long[] wrongAdapterOff,
                         double accuracyBefore, double accuracyAfter, double accuracyAdapterOff,
                         long baseParameters, long loraParameters, boolean usedCache, Path adapterFile, Path plotFile) {}

    /** The run's settings. */
    public record Settings(int epochs, int batch, double lr, int finetuneBatches, int rank, double alpha, long seed,
                           int limit, Path out, Path cache, boolean verbose) {}

    private FineTune() {}

    /** The flags {@link #settings} reads. */
    public static final java.util.List<String> FLAGS = java.util.List.of("--epochs", "--batch", "--lr", "--finetune-batches", "--rank",
            "--alpha", "--seed", "--limit", "--out", "--cache");

    public static void main(String[] args) throws IOException {
        Flags.check(args, FLAGS);
        Settings s = settings(args);
        Torch.setNumThreads(Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "lora4j fine-tune demo (seed 000) on Fashion-MNIST, LibTorch %s, %d threads%n%n",
                Torch.version(), Torch.getNumThreads());
        run(s);
    }

    /** The settings the command-line flags ask for (defaults: the seed's). */
    public static Settings settings(String[] args) {
        Path home = Path.of(System.getProperty("user.home"));
        return new Settings(Flags.intFlag(args, "--epochs", 1), Flags.intFlag(args, "--batch", 10),
                Flags.doubleFlag(args, "--lr", 1e-3), Flags.intFlag(args, "--finetune-batches", 100),
                Flags.intFlag(args, "--rank", 1), Flags.doubleFlag(args, "--alpha", 1), Flags.longFlag(args, "--seed", 0),
                Flags.intFlag(args, "--limit", 60_000), Path.of(orElse(Flags.flag(args, "--out"), "target/fine-tune")),
                Path.of(orElse(Flags.flag(args, "--cache"), home.resolve(".cache/lora4j").toString())), true);
    }

    private static String orElse(String v, String def) {
        return v != null ? v : def;
    }

    /** The seed's MLP 784→1000→2000→10 (freshly initialised). */
    public static Sequential mlp() {
        return new Sequential(new Linear(784, 1000), Activation.relu(), new Linear(1000, 2000), Activation.relu(),
                new Linear(2000, 10));
    }

    public static Result run(Settings s) throws IOException {
        Torch.manualSeed(s.seed());
        Files.createDirectories(s.out());
        try (TensorDataset fullTrain = FashionMnist.train(); TensorDataset test = FashionMnist.test();
             Sequential model = mlp()) {
            TensorDataset train = s.limit() < fullTrain.size() ? firstN(fullTrain, s.limit()) : null;
            TensorDataset trainSet = train != null ? train : fullTrain;
            long baseParams = model.parameterCount();
            say(s, "model: %s%nparameters: %,d%n%n", model, baseParams);

            // 1. Pre-train (or load the cached pre-trained weights).
            List<Double> lossCurve = new ArrayList<>();
            boolean usedCache = pretrain(s, model, trainSet, lossCurve);

            // 2. Evaluate; pick the worst class.
            long[] wrongBefore = wrongPerClass(model, test);
            int worst = argmax(wrongBefore);
            double accBefore = accuracy(wrongBefore, test.size());
            say(s, "%ntest accuracy %.4f; wrong per class %s; worst class %d (%s, %d wrong)%n", accBefore,
                    java.util.Arrays.toString(wrongBefore), worst, FashionMnist.CLASSES[worst], wrongBefore[worst]);

            // 3. Rank-r LoRA parametrizations on the three Linear layers; freeze the base.
            List<LoraParametrization> adapters = new ArrayList<>();
            for (int i : new int[] {0, 2, 4}) adapters.add(LoraParametrization.register(model.get(i), s.rank(), s.alpha()));
            model.namedParameters().forEach((n, p) -> p.requiresGrad_(n.contains("lora_")));
            long loraParams = model.parameterCount() - baseParams;
            say(s, "%nwith rank-%d LoRA: %,d parameters (%,d added), %,d trainable%n", s.rank(), model.parameterCount(),
                    loraParams, model.trainableParameterCount());

            // 4. Fine-tune the adapters on the worst class only.
            try (TensorDataset only = trainSet.filterClasses(worst);
                 Adam opt = new Adam(model.trainableParameters(), s.lr())) {
                train(s, model, opt, only, (long) s.finetuneBatches() * s.batch(), "fine-tune on class " + worst, null);
            }
            long[] wrongAfter = wrongPerClass(model, test);
            double accAfter = accuracy(wrongAfter, test.size());

            // 5. Adapters off: the original model, exactly.
            adapters.forEach(a -> a.setEnabled(false));
            long[] wrongOff = wrongPerClass(model, test);
            adapters.forEach(a -> a.setEnabled(true));
            double accOff = accuracy(wrongOff, test.size());

            long[] perClass = test.classCounts(10);
            say(s, "%n%-12s %8s %8s %12s%n", "class", "before", "after", "adapter off");
            for (int c = 0; c < 10; c++) {
                say(s, "%-12s %7.1f%% %7.1f%% %11.1f%%%s%n", FashionMnist.CLASSES[c], pct(perClass[c] - wrongBefore[c], perClass[c]),
                        pct(perClass[c] - wrongAfter[c], perClass[c]), pct(perClass[c] - wrongOff[c], perClass[c]),
                        c == worst ? "   <- fine-tuned" : "");
            }
            say(s, "%-12s %7.2f%% %7.2f%% %11.2f%%%n", "all", 100 * accBefore, 100 * accAfter, 100 * accOff);
            say(s, "adapter off restores the original predictions exactly: %s%n",
                    java.util.Arrays.equals(wrongBefore, wrongOff) && accOff == accBefore);

            // 6. Save the adapter and the plot.
            Path adapterFile = s.out().resolve("adapter.safetensors");
            try (TensorScope scope = TensorScope.open()) {
                Map<String, Tensor> adapter = new LinkedHashMap<>();
                model.stateDict().forEach((n, t) -> {
                    if (n.contains("lora_")) adapter.put(n, t);
                });
                Safetensors.write(adapterFile, adapter, Map.of("format", "pt", "rank", Integer.toString(s.rank()),
                        "lora_alpha", Double.toString(s.alpha()), "fine_tuned_class", Integer.toString(worst)));
            }
            Path plot = s.out().resolve("fine-tune.png");
            Plots.fineTune(plot, lossCurve, wrongBefore, wrongAfter, worst);
            say(s, "%nadapter saved to %s%nplot saved to %s%n", adapterFile.toAbsolutePath(), plot.toAbsolutePath());
            if (train != null) train.close();
            return new Result(worst, wrongBefore, wrongAfter, wrongOff, accBefore, accAfter, accOff, baseParams, loraParams,
                    usedCache, adapterFile, plot);
        }
    }

    /**
     * Pre-trains {@code model} on {@code trainSet} as the settings say, or loads the weights
     * cached by an earlier run with the same settings; returns whether the cache was used.
     * The loss curve (mean of every 100 batches) goes into {@code lossCurve} when training.
     */
    static boolean pretrain(Settings s, Sequential model, TensorDataset trainSet, List<Double> lossCurve) throws IOException {
        Path cached = cachedModel(s, trainSet.size());
        if (Files.isRegularFile(cached)) {
            loadCached(s, model, cached);
            return true;
        }
        long t0 = System.nanoTime();
        try (Adam opt = new Adam(model.trainableParameters(), s.lr())) {
            for (int epoch = 1; epoch <= s.epochs(); epoch++) {
                train(s, model, opt, trainSet, trainSet.size(), "pre-train " + epoch + "/" + s.epochs(), lossCurve);
            }
        }
        long steps = (long) s.epochs() * Math.max(1, trainSet.size() / s.batch());
        double seconds = (System.nanoTime() - t0) / 1e9;
        say(s, "pre-trained in %.1f s (%.2f ms per step of %d)%n", seconds, 1e3 * seconds / steps, steps);
        try (TensorScope scope = TensorScope.open()) {
            Safetensors.write(cached, model.stateDict(), Map.of("format", "pt", "lora4j", "fine-tune base"));
        }
        say(s, "cached the pre-trained model in %s%n", cached);
        return false;
    }

    private static void loadCached(Settings s, Sequential model, Path cached) throws IOException {
        try (Safetensors.Contents c = Safetensors.read(cached)) {
            model.loadStateDict(c.tensors(), true);
        }
        say(s, "pre-trained model loaded from %s (delete it to train again)%n", cached);
    }

    /** Where {@link #pretrain} caches the weights pre-trained with these settings on {@code trainSize} samples. */
    static Path cachedModel(Settings s, long trainSize) {
        return s.cache().resolve(String.format(Locale.ROOT, "fashion-mlp-seed%d-e%d-b%d-lr%s-n%d.safetensors",
                s.seed(), s.epochs(), s.batch(), s.lr(), trainSize));
    }

    /**
     * The pre-trained MLP of step 1, in eval mode, owned by the caller: loaded from the cache
     * when an earlier run made it (the data set is then not read at all), else pre-trained on
     * Fashion-MNIST and cached, as {@link #run} does.
     */
    public static Sequential pretrainedModel(Settings s) throws IOException {
        Torch.manualSeed(s.seed());
        Sequential model = mlp();
        try {
            long trainSize = Math.min(s.limit(), FashionMnist.TRAIN_SIZE);
            Path cached = cachedModel(s, trainSize);
            if (Files.isRegularFile(cached)) {
                loadCached(s, model, cached);
            } else {
                try (TensorDataset fullTrain = FashionMnist.train()) {
                    TensorDataset train = s.limit() < fullTrain.size() ? firstN(fullTrain, s.limit()) : null;
                    try {
                        pretrain(s, model, train != null ? train : fullTrain, new ArrayList<>());
                    } finally {
                        if (train != null) train.close();
                    }
                }
            }
            model.eval();
            return model;
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    private static TensorDataset firstN(TensorDataset d, long n) {
        try (Batch b = d.slice(0, n)) {
            return new TensorDataset(b.inputs().clone(), b.targets().clone());
        }
    }

    /** Trains on {@code items} samples of {@code data} (cycling, shuffled) with a progress bar. */
    static void train(Settings s, Module model, dev.lora4j.optim.Optimizer opt, TensorDataset data, long items, String task,
                      List<Double> curve) {
        train(s, model, opt, data, items, task, curve, dev.lora4j.optim.Optimizer::step);
    }

    /** As above, with {@code stepper} making each update (a DyLoRA controller's step, say). */
    static void train(Settings s, Module model, dev.lora4j.optim.Optimizer opt, TensorDataset data, long items, String task,
                      List<Double> curve, java.util.function.Consumer<dev.lora4j.optim.Optimizer> stepper) {
        model.train();
        long batches = Math.max(1, items / s.batch());
        double running = Double.NaN;
        double window = 0;
        int inWindow = 0;
        ProgressBarBuilder builder = new ProgressBarBuilder().setTaskName(task).setInitialMax(batches * s.batch())
                .setUnit(" img", 1).showSpeed().setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(250);
        try (ProgressBar pb = s.verbose() ? builder.build() : null) {
            long done = 0;
            long epochSeed = s.seed();
            while (done < batches) {
                Iterator<Batch> epoch = data.loader(s.batch(), true, epochSeed++, true).iterator();
                while (done < batches && epoch.hasNext()) {
                    // The batch is taken inside the step's scope: it is freed with the step's temporaries.
                    try (TensorScope scope = TensorScope.open()) {
                        Batch b = epoch.next();
                        opt.zeroGrad();
                        Tensor loss = crossEntropy(model.forward(b.inputs()), b.targets());
                        loss.backward();
                        stepper.accept(opt);
                        double l = loss.item();
                        running = Double.isNaN(running) ? l : 0.98 * running + 0.02 * l;
                        window += l;
                        if (++inWindow == 100) {
                            if (curve != null) curve.add(window / inWindow);
                            window = 0;
                            inWindow = 0;
                        }
                    }
                    done++;
                    if (pb != null) {
                        pb.stepBy(s.batch());
                        pb.setExtraMessage(String.format(Locale.ROOT, "loss %.3f", running));
                    }
                }
            }
        }
    }

    /** Wrong predictions per true class on {@code data}, in eval mode without gradients. */
    static long[] wrongPerClass(Module model, TensorDataset data) {
        model.eval();
        long[] wrong = new long[10];
        try (var ng = Torch.noGrad()) {
            for (Batch b : data.loader(1000, false, 0, false)) {
                try (b; TensorScope scope = TensorScope.open()) {
                    long[] predicted = model.forward(b.inputs()).argmax(1).toLongArray();
                    long[] truth = b.targets().toLongArray();
                    for (int i = 0; i < truth.length; i++) if (predicted[i] != truth[i]) wrong[(int) truth[i]]++;
                }
            }
        }
        model.train();
        return wrong;
    }

    private static int argmax(long[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private static double accuracy(long[] wrong, long total) {
        long w = 0;
        for (long x : wrong) w += x;
        return 1.0 - (double) w / total;
    }

    private static double pct(long good, long total) {
        return 100.0 * good / total;
    }

    static void say(Settings s, String format, Object... args) {
        if (s.verbose()) System.out.printf(Locale.ROOT, format, args);
    }
}
