package dev.lora4j.examples;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.examples.data.DebianPackages;
import dev.lora4j.examples.data.PackageDataset;
import dev.lora4j.examples.data.Tenant;
import dev.lora4j.examples.serve.TenantFolders;
import dev.lora4j.examples.text.DataExport;
import dev.lora4j.examples.text.Evaluation;
import dev.lora4j.examples.text.MeanPoolingClassifier;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.examples.text.TokenizedSplit;
import dev.lora4j.examples.text.TrainingLoop;
import dev.lora4j.hftools.BertTokenizer;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.optim.AdamW;
import dev.lora4j.optim.Schedulers;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Issue 15's task end to end: fine-tune all-MiniLM-L6-v2 with LoRA to tell a tenant's Debian
 * package descriptions apart by section (which language ecosystem, which desktop/media area,
 * which kind of system software), in Java on LibTorch.
 *
 * <p>The model: all-MiniLM-L6-v2 imported once from its ONNX file by hf-tools (cached as a HF
 * folder in {@code ~/.cache/lora4j/all-minilm-l6-v2}), mean pooling and a Linear head
 * ({@link MeanPoolingClassifier}). The data: the tenant's {@link PackageDataset} from
 * {@code apt-cache dumpavail} (fixed seed, de-duplicated, class-balanced), tokenized by the
 * model's own {@code tokenizer.json} ({@link BertTokenizer}). Three modes:
 * <ul>
 *   <li>{@code lora}: LoRA r 8, α 16 on {@code query} and {@code value} (PEFT's default for
 *       BERT), the head trained whole (PEFT's {@code modules_to_save=["classifier"]});</li>
 *   <li>{@code probe}: a linear probe, the encoder frozen: the mean-pooled embeddings are computed
 *       once and only the head trains;</li>
 *   <li>{@code full}: every parameter trains (a smaller learning rate for the encoder).</li>
 * </ul>
 * Training as Hugging Face's Trainer does it: AdamW (weight decay 0.01) with linear warm-up
 * (10 % of the steps) and linear decay, gradient-norm clipping at 1.0, shuffled batches
 * ({@link TrainingLoop}). Dropout is off (the model stays in eval mode), so that the Python run
 * of the same export computes the same function step for step. It prints a progress bar (loss,
 * samples/s), the validation and test accuracy with every class's, writes a PNG of the loss and
 * per-class accuracy, and saves the adapter as a PEFT folder ({@code adapter_config.json} +
 * {@code adapter_model.safetensors}, the head under {@code modules_to_save}; the class names in
 * {@code lora4j_labels}, so the folder is a tenant the {@code /classify} service serves as it is:
 * {@link dev.lora4j.examples.serve.TenantFolders}), then loads that folder into a fresh model and
 * checks it predicts the test set exactly as the trained model.
 *
 * <p>Flags: {@code --tenant languages|desktop-media|system --train N (training samples, default
 * all) --epochs E --seq S (max tokens) --batch B --lr LR --head-lr LR --mode lora|probe|full
 * --rank R --alpha A --out DIR --cache DIR --seed S --threads T --packages FILE (an apt-cache dumpavail listing
 * instead of running it) --export-data FILE (the tokenized splits, epoch orders, initial
 * trainable weights and hyper-parameters as safetensors, for benchmarks/python/text_finetune.py)}.
 */
public final class TextFineTune {

    /** The training modes. */
    public enum Mode { LORA, PROBE, FULL }

    /** A run's settings; {@link #settings} gives each mode's defaults. */
    public record Settings(Tenant tenant, int train, int epochs, int seq, int batch, double lr, double headLr, Mode mode,
                           int rank, double alpha, double warmupRatio, double weightDecay, double maxGradNorm, long seed,
                           Path out, Path cache, Path packages, Path exportData, boolean verbose) {

        /** Refuses settings no run can use, naming the flag that sets each. */
        public Settings {
            java.util.Objects.requireNonNull(tenant, "tenant");
            java.util.Objects.requireNonNull(mode, "mode");
            atLeastOne("--train", train);
            atLeastOne("--epochs", epochs);
            atLeastOne("--seq", seq);
            atLeastOne("--batch", batch);
            atLeastOne("--rank", rank);
            positive("--lr", lr);
            positive("--head-lr", headLr);
            positive("--alpha", alpha);
            if (!(warmupRatio >= 0 && warmupRatio <= 1)) throw new IllegalArgumentException("warmupRatio must be in [0, 1], got " + warmupRatio);
            if (!(weightDecay >= 0 && Double.isFinite(weightDecay))) throw new IllegalArgumentException("weightDecay must be >= 0, got " + weightDecay);
            if (!(maxGradNorm >= 0 && Double.isFinite(maxGradNorm))) throw new IllegalArgumentException("maxGradNorm must be >= 0, got " + maxGradNorm);
            java.util.Objects.requireNonNull(out, "out");
            java.util.Objects.requireNonNull(cache, "cache");
        }

        private static void atLeastOne(String flag, int v) {
            if (v < 1) throw new IllegalArgumentException(flag + " must be >= 1, got " + v);
        }

        private static void positive(String flag, double v) {
            if (!(v > 0 && Double.isFinite(v))) throw new IllegalArgumentException(flag + " must be a finite number > 0, got " + v);
        }
    }

    /** The flags {@link #main} knows. */
    public static final List<String> FLAGS = List.of("--tenant", "--train", "--epochs", "--seq", "--batch", "--lr", "--head-lr",
            "--mode", "--rank", "--alpha", "--out", "--cache", "--seed", "--threads", "--packages", "--export-data");

    /** What a run measured. */
    public record Result(Settings settings, List<String> classes, int trainSamples, Evaluation validation, Evaluation test,
                         TrainingLoop.Log log, long trainableParameters, Path adapter, Evaluation reloaded,
                         double reloadedMaxLogitDifference, Path plot) {}

    private TextFineTune() {}

    public static void main(String[] args) throws IOException {
        Settings s = settings(args);
        Torch.setNumThreads(Flags.intFlag(args, "--threads", Runtime.getRuntime().availableProcessors()));
        say(s, "lora4j text fine-tune: all-MiniLM-L6-v2 on the Debian packages of tenant '%s', mode %s, LibTorch %s, %d threads%n",
                s.tenant().name(), s.mode().name().toLowerCase(Locale.ROOT), Torch.version(), Torch.getNumThreads());
        Result r = run(s);
        System.out.printf(Locale.ROOT, "RESULT tenant=%s mode=%s train=%d epochs=%d seq=%d batch=%d test_accuracy=%.4f "
                        + "train_seconds=%.1f steps=%d steps_per_second=%.3f samples_per_second=%.1f first_loss=%.6f final_loss=%.4f%n",
                s.tenant().name(), s.mode().name().toLowerCase(Locale.ROOT), r.trainSamples(), s.epochs(), s.seq(), s.batch(),
                r.test().accuracy(), r.log().seconds(), r.log().steps(), r.log().stepsPerSecond(), r.log().samplesPerSecond(),
                r.log().losses().get(0), tailMean(r.log().losses(), 10));
    }

    /**
     * The settings the flags ask for. Defaults: 1,000 training samples, 3 epochs, 32 tokens (the
     * synopses apt lists are 12 tokens on average, 19 at the 95th percentile; 0.3 % are cut),
     * batch 32 (96 steps, a few minutes on 2 cores); LoRA lr 2e-3 for the factors and 1e-2 for
     * the head (1e-3 for both reached 72.7 % on languages, below the probe); the probe 20 epochs
     * at 1e-2 (the embeddings are computed once, so epochs are cheap); full fine-tuning lr 5e-5
     * for the encoder and 1e-2 for the head.
     */
    public static Settings settings(String[] args) {
        Flags.check(args, FLAGS);
        String modeName = orElse(Flags.flag(args, "--mode"), "lora");
        Mode mode = java.util.Arrays.stream(Mode.values()).filter(m -> m.name().equalsIgnoreCase(modeName)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("--mode must be lora, probe or full, got " + modeName));
        String tenantName = orElse(Flags.flag(args, "--tenant"), Tenant.LANGUAGES.name());
        Tenant tenant = Tenant.defaults().stream().filter(t -> t.name().equals(tenantName)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("--tenant must be one of "
                        + Tenant.defaults().stream().map(Tenant::name).toList() + ", got " + tenantName));
        double lr = Flags.doubleFlag(args, "--lr", switch (mode) {
            case LORA -> 2e-3;
            case PROBE -> 1e-2;
            case FULL -> 5e-5;
        });
        double headLr = Flags.doubleFlag(args, "--head-lr", mode == Mode.PROBE ? lr : 1e-2);
        int epochs = Flags.intFlag(args, "--epochs", mode == Mode.PROBE ? 20 : 3);
        Path home = Path.of(System.getProperty("user.home"));
        String packages = Flags.flag(args, "--packages");
        String export = Flags.flag(args, "--export-data");
        return new Settings(tenant, Flags.intFlag(args, "--train", 1000), epochs, Flags.intFlag(args, "--seq", 32),
                Flags.intFlag(args, "--batch", 32), lr, headLr, mode, Flags.intFlag(args, "--rank", 8),
                Flags.doubleFlag(args, "--alpha", 16), 0.1, 0.01, 1.0, Flags.longFlag(args, "--seed", 0),
                Path.of(orElse(Flags.flag(args, "--out"), "target/text-fine-tune")),
                Path.of(orElse(Flags.flag(args, "--cache"), home.resolve(".cache/lora4j").toString())),
                packages == null ? null : Path.of(packages), export == null ? null : Path.of(export), true);
    }

    /** Loads the tenant's data set and the model, and runs {@link #run(Settings, PackageDataset, Path)}. */
    public static Result run(Settings s) throws IOException {
        DebianPackages.Parsed parsed = s.packages() == null ? DebianPackages.dumpavail() : DebianPackages.read(s.packages());
        if (parsed.packages().isEmpty()) {
            throw new IOException("no Debian package list: run 'apt-get update' first (apt-cache dumpavail printed nothing)");
        }
        PackageDataset data = PackageDataset.build(DebianPackages.deduplicate(parsed.packages()).packages(), s.tenant(),
                PackageDataset.Options.defaults());
        say(s, "%s", data.report());
        Path checkpoint = MiniLmCheckpoint.ensure(s.cache());
        say(s, "model: %s%n", checkpoint);
        return run(s, data, checkpoint);
    }

    /** Fine-tunes on {@code data} the BERT of the HF folder {@code checkpoint} (with its {@code tokenizer.json}). */
    public static Result run(Settings s, PackageDataset data, Path checkpoint) throws IOException {
        Files.createDirectories(s.out());
        List<String> classes = s.tenant().sections();
        List<PackageDataset.Example> trainExamples = data.train().subList(0, Math.min(s.train(), data.train().size()));
        TokenizedSplit train;
        TokenizedSplit validation;
        TokenizedSplit test;
        try (BertTokenizer tokenizer = BertTokenizer.fromFile(MiniLmCheckpoint.tokenizer(checkpoint), s.seq())) {
            train = TokenizedSplit.of(trainExamples, tokenizer);
            validation = TokenizedSplit.of(data.validation(), tokenizer);
            test = TokenizedSplit.of(data.test(), tokenizer);
        }
        say(s, "tokenized: train %d x %d, validation %d x %d, test %d x %d (at most %d tokens)%n", train.size(), train.length(),
                validation.size(), validation.length(), test.size(), test.length(), s.seq());

        Torch.manualSeed(s.seed());
        try (MeanPoolingClassifier model = new MeanPoolingClassifier(BertLoader.bertModel(checkpoint), classes.size())) {
            LoraConfig lora = LoraConfig.of(s.rank(), s.alpha()).withTargetModules("query", "value");
            prepare(model, s.mode(), lora);
            model.eval(); // no dropout: the same function as the Python comparison
            long trainable = model.trainableParameterCount();
            say(s, "%s: %,d parameters, %,d trainable%n", s.mode().name().toLowerCase(Locale.ROOT), model.parameterCount(), trainable);

            int[][] orders = TrainingLoop.epochOrders(train.size(), s.epochs(), s.seed());
            int steps = TrainingLoop.steps(train.size(), s.epochs(), s.batch());
            int warmup = (int) Math.ceil(s.warmupRatio() * steps);
            if (s.exportData() != null) {
                DataExport.write(s.exportData(), s, model, lora, train, test, orders, warmup, steps, classes);
                say(s, "exported the tokenized splits, epoch orders and initial weights to %s%n", s.exportData());
            }

            TrainingLoop.Log log;
            Evaluation valid;
            Evaluation tested;
            if (s.mode() == Mode.PROBE) {
                try (Tensor trainEmb = embeddings(model, train, s.batch()); Tensor testEmb = embeddings(model, test, s.batch());
                     Tensor validEmb = embeddings(model, validation, s.batch());
                     Tensor labels = Tensor.of(train.labels(), train.size())) {
                    log = fit(s, model, orders, warmup, steps, rows -> {
                        try (Tensor idx = Tensor.of(toLongs(rows), rows.length)) {
                            return crossEntropy(model.classifier().forward(trainEmb.indexSelect(0, idx)), labels.indexSelect(0, idx));
                        }
                    });
                    valid = Evaluation.of(rows -> rowsOf(validEmb, rows, model), validation.labels(), classes.size(), 128);
                    tested = Evaluation.of(rows -> rowsOf(testEmb, rows, model), test.labels(), classes.size(), 128);
                }
            } else {
                log = fit(s, model, orders, warmup, steps, rows -> {
                    try (TokenizedSplit.Batch b = train.batch(rows)) {
                        return crossEntropy(model.forward(b.inputIds(), b.attentionMask()), b.labels());
                    }
                });
                valid = Evaluation.of(splitLogits(model, validation), validation.labels(), classes.size(), 128);
                tested = Evaluation.of(splitLogits(model, test), test.labels(), classes.size(), 128);
            }
            return finish(s, classes, train, test, model, lora, trainable, log, valid, tested, checkpoint);
        }
    }

    /** Marks what trains in each mode: LoRA factors and head, the head alone, or everything. */
    static void prepare(MeanPoolingClassifier model, Mode mode, LoraConfig lora) {
        switch (mode) {
            case LORA -> {
                Lora.wrap(model, lora); // freezes everything but the LoRA factors
                model.classifier().requiresGrad_(true); // PEFT's modules_to_save: trained whole
            }
            case PROBE -> {
                model.bert().requiresGrad_(false);
                model.classifier().requiresGrad_(true);
            }
            case FULL -> model.requiresGrad_(true);
        }
    }

    /** Two parameter groups (encoder at lr, head at head-lr), each an AdamW with its linear warm-up/decay schedule. */
    private static TrainingLoop.Log fit(Settings s, MeanPoolingClassifier model, int[][] orders, int warmup, int steps,
            TrainingLoop.BatchLoss loss) {
        List<Tensor> head = model.classifier().trainableParameters();
        List<Tensor> encoder = model.bert().trainableParameters();
        List<TrainingLoop.Group> groups = new ArrayList<>();
        List<AdamW> optimizers = new ArrayList<>();
        try {
            if (!encoder.isEmpty()) optimizers.add(new AdamW(encoder, AdamW.lr(s.lr()).weightDecay(s.weightDecay())));
            optimizers.add(new AdamW(head, AdamW.lr(s.headLr()).weightDecay(s.weightDecay())));
            for (AdamW o : optimizers) groups.add(new TrainingLoop.Group(o, Schedulers.linearWithWarmup(o, warmup, steps)));
            say(s, "training: %d samples x %d epochs = %d steps of %d, warm-up %d steps, lr %.0e (encoder) %.0e (head)%n",
                    orders.length == 0 ? 0 : orders[0].length, orders.length, steps, s.batch(), warmup, s.lr(), s.headLr());
            return TrainingLoop.run(orders, s.batch(), groups, model.trainableParameters(), s.maxGradNorm(), loss,
                    s.verbose() ? s.mode().name().toLowerCase(Locale.ROOT) : null);
        } finally {
            optimizers.forEach(AdamW::close);
        }
    }

    private static Result finish(Settings s, List<String> classes, TokenizedSplit train, TokenizedSplit test,
            MeanPoolingClassifier model, LoraConfig lora, long trainable, TrainingLoop.Log log,
            Evaluation valid, Evaluation testEval, Path checkpoint) throws IOException {
        say(s, "trained %d steps in %.1f s: %.2f steps/s, %.1f samples/s; final loss (mean of the last 10 steps) %.4f%n",
                log.steps(), log.seconds(), log.stepsPerSecond(), log.samplesPerSecond(), tailMean(log.losses(), 10));
        say(s, "%n%-12s %10s %10s%n", "class", "validation", "test");
        for (int c = 0; c < classes.size(); c++) {
            say(s, "%-12s %9.1f%% %9.1f%%%n", classes.get(c), 100 * valid.perClass()[c], 100 * testEval.perClass()[c]);
        }
        say(s, "%-12s %9.2f%% %9.2f%%%n%n", "all", 100 * valid.accuracy(), 100 * testEval.accuracy());
        Path plot = s.out().resolve("text-fine-tune-" + s.tenant().name() + "-" + s.mode().name().toLowerCase(Locale.ROOT) + ".png");
        Plots.textFineTune(plot, log.losses(), classes, testEval.perClass(), String.format(Locale.ROOT, "%s, %s: test accuracy %.1f%%",
                s.tenant().name(), s.mode().name().toLowerCase(Locale.ROOT), 100 * testEval.accuracy()));
        say(s, "plot saved to %s%n", plot.toAbsolutePath());
        Path adapter = null;
        Evaluation reloaded = null;
        double maxDiff = Double.NaN;
        if (s.mode() == Mode.LORA) {
            adapter = s.out().resolve("adapter-" + s.tenant().name());
            TenantFolders.save(model, "default", lora, adapter, classes, false);
            try (MeanPoolingClassifier fresh = new MeanPoolingClassifier(BertLoader.bertModel(checkpoint), classes.size());
                 TensorScope scope = TensorScope.open()) {
                PeftAdapter.load(fresh, adapter);
                fresh.eval();
                Tensor before = Evaluation.logits(splitLogits(model, test), test.size(), 128);
                Tensor after = Evaluation.logits(splitLogits(fresh, test), test.size(), 128);
                reloaded = Evaluation.of(after, test.labels(), classes.size());
                maxDiff = after.sub(before).abs().max().item();
            }
            say(s, "adapter saved to %s (PEFT folder); reloaded into a fresh model: test accuracy %.2f%% (trained: %.2f%%), "
                    + "same predictions: %s, largest logit difference %.2e%n", adapter.toAbsolutePath(), 100 * reloaded.accuracy(),
                    100 * testEval.accuracy(), java.util.Arrays.equals(reloaded.predictions(), testEval.predictions()), maxDiff);
        }
        return new Result(s, classes, train.size(), valid, testEval, log, trainable, adapter, reloaded, maxDiff, plot);
    }

    /** The logits of rows of a tokenized split. */
    static Evaluation.Logits splitLogits(MeanPoolingClassifier model, TokenizedSplit split) {
        return rows -> {
            try (TokenizedSplit.Batch b = split.batch(rows)) {
                return model.forward(b.inputIds(), b.attentionMask());
            }
        };
    }

    /** Mean-pooled embeddings (n, hidden) of a whole split, computed without gradients. */
    private static Tensor embeddings(MeanPoolingClassifier model, TokenizedSplit split, int batch) {
        List<Tensor> parts = new ArrayList<>();
        try (var noGrad = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            for (int start = 0; start < split.size(); start += batch) {
                int[] rows = java.util.stream.IntStream.range(start, Math.min(split.size(), start + batch)).toArray();
                try (TokenizedSplit.Batch b = split.batch(rows)) {
                    parts.add(model.embed(b.inputIds(), b.attentionMask()));
                }
            }
            return Tensor.cat(parts, 0).keep();
        }
    }

    private static Tensor rowsOf(Tensor embeddings, int[] rows, MeanPoolingClassifier model) {
        try (Tensor idx = Tensor.of(toLongs(rows), rows.length); Tensor x = embeddings.indexSelect(0, idx)) {
            return model.classifier().forward(x);
        }
    }

    private static long[] toLongs(int[] v) {
        return java.util.Arrays.stream(v).asLongStream().toArray();
    }

    private static double tailMean(List<Double> v, int n) {
        return v.subList(Math.max(0, v.size() - n), v.size()).stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
    }

    private static String orElse(String v, String def) {
        return v != null ? v : def;
    }

    private static void say(Settings s, String format, Object... args) {
        if (s.verbose()) System.out.printf(Locale.ROOT, format, args);
    }
}
