package dev.lora4j.examples;

import dev.lora4j.Torch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraController;
import dev.lora4j.examples.serve.DyLoraFolders;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Makes the adapters the inference service demo serves, in an adapters root (skipping those
 * already there): on the pre-trained Fashion-MNIST MLP of {@link FineTune} (from its cache),
 * fine-tuned on the class the model gets wrong most, as seed 000 does (100 batches of 10,
 * Adam 1e-3):
 *
 * <ul>
 *   <li>{@code worst-class}: a LoRA adapter of rank 4 (α 4) on the three linear layers, a PEFT folder;
 *   <li>{@code worst-class-dylora}: a DyLoRA adapter of r_max 4 (α 4), servable at ranks 1..4
 *       (see {@link DyLoraFolders}).
 * </ul>
 *
 * Flags: {@code --adapters DIR} (default {@code target/adapters}) and FineTune's {@code --cache}.
 */
public final class DemoAdapters {

    private DemoAdapters() {}

    public static void main(String[] args) throws IOException {
        Flags.check(args, Flags.union(FineTune.FLAGS, java.util.List.of("--adapters")));
        Path root = Path.of(orElse(Flags.flag(args, "--adapters"), "target/adapters"));
        FineTune.Settings base = FineTune.settings(args);
        FineTune.Settings s = new FineTune.Settings(base.epochs(), base.batch(), base.lr(), base.finetuneBatches(), 4, 4,
                base.seed(), base.limit(), base.out(), base.cache(), false);
        Path lora = root.resolve("worst-class");
        Path dylora = root.resolve("worst-class-dylora");
        if (Files.isDirectory(lora) && Files.isDirectory(dylora)) {
            System.out.println("demo adapters already in " + root.toAbsolutePath());
            return;
        }
        Torch.setNumThreads(Runtime.getRuntime().availableProcessors());
        try (TensorDataset train = FashionMnist.train(); TensorDataset test = FashionMnist.test()) {
            int worst;
            try (Sequential model = FineTune.pretrainedModel(s)) {
                long[] wrong = FineTune.wrongPerClass(model, test);
                worst = 0;
                for (int c = 1; c < wrong.length; c++) if (wrong[c] > wrong[worst]) worst = c;
            }
            System.out.printf(Locale.ROOT, "fine-tuning on class %d (%s), the one the model gets wrong most%n", worst,
                    FashionMnist.CLASSES[worst]);
            try (TensorDataset only = train.filterClasses(worst)) {
                long items = (long) s.finetuneBatches() * s.batch();
                if (!Files.isDirectory(lora)) {
                    try (Sequential model = FineTune.pretrainedModel(s)) {
                        LoraConfig config = LoraConfig.of(s.rank(), s.alpha());
                        Lora.wrap(model, config);
                        try (Adam opt = new Adam(model.trainableParameters(), s.lr())) {
                            FineTune.train(s, model, opt, only, items, "LoRA", null);
                        }
                        PeftAdapter.save(model, config, lora);
                        System.out.println("LoRA adapter saved to " + lora.toAbsolutePath());
                    }
                }
                if (!Files.isDirectory(dylora)) {
                    try (Sequential model = FineTune.pretrainedModel(s)) {
                        DyLora.wrap(model, LoraConfig.of(s.rank(), s.alpha()));
                        DyLoraController ctl = DyLoraController.of(model, s.seed());
                        try (Adam opt = new Adam(model.trainableParameters(), s.lr())) {
                            FineTune.train(s, model, opt, only, items, "DyLoRA", null, ctl::step);
                        }
                        ctl.setRank(s.rank());
                        DyLoraFolders.save(model, dylora);
                        System.out.println("DyLoRA adapter saved to " + dylora.toAbsolutePath());
                    }
                }
            }
        }
    }

    private static String orElse(String v, String def) {
        return v != null ? v : def;
    }
}
