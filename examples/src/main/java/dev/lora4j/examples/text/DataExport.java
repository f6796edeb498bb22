package dev.lora4j.examples.text;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.examples.TextFineTune;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.LoraConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Writes what another implementation needs to replay a LoRA run of {@link TextFineTune} exactly,
 * as one safetensors file: {@code train.input_ids}, {@code train.attention_mask},
 * {@code train.labels} and the same for {@code test} (int64, rows padded to the split's longest
 * text), {@code train_order} (int64 (epochs, n): the rows of each epoch in training order),
 * the initial trainable weights under {@code init.} + their PEFT key
 * ({@code init.base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight}, ...,
 * {@code init.base_model.model.classifier.weight}), and the hyper-parameters as metadata
 * (strings: {@code r}, {@code lora_alpha}, {@code lr}, {@code head_lr}, {@code weight_decay},
 * {@code warmup_steps}, {@code total_steps}, {@code batch}, {@code epochs}, {@code max_grad_norm},
 * {@code classes}, ...). Stateless, thread-safe.
 */
public final class DataExport {

    private DataExport() {}

    /** Writes the export of a LoRA run about to start ({@code model} wrapped, not yet trained). */
    public static void write(Path file, TextFineTune.Settings s, MeanPoolingClassifier model, LoraConfig lora,
            TokenizedSplit train, TokenizedSplit test, int[][] orders, int warmupSteps, int totalSteps, List<String> classes)
            throws IOException {
        if (s.mode() != TextFineTune.Mode.LORA) throw new IllegalArgumentException("--export-data is for --mode lora, got " + s.mode());
        Path parent = file.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path initial = Files.createTempDirectory(parent, "init-adapter");
        try (TensorScope scope = TensorScope.open()) {
            PeftAdapter.save(model, "default", lora, List.of("classifier"), initial);
            Map<String, Tensor> out = new LinkedHashMap<>();
            out.putAll(train.tensors("train"));
            out.putAll(test.tensors("test"));
            long[] order = new long[orders.length * train.size()];
            for (int e = 0; e < orders.length; e++) {
                for (int i = 0; i < train.size(); i++) order[e * train.size() + i] = orders[e][i];
            }
            out.put("train_order", Tensor.of(order, orders.length, train.size()));
            try (Safetensors.Contents c = Safetensors.read(initial.resolve(PeftAdapter.WEIGHTS))) {
                c.tensors().forEach((k, t) -> out.put("init." + k, t.clone()));
            }
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", "pt");
            meta.put("tenant", s.tenant().name());
            meta.put("classes", String.join(",", classes));
            meta.put("r", Integer.toString(lora.r()));
            meta.put("lora_alpha", num(lora.loraAlpha()));
            meta.put("target_modules", "query,value");
            meta.put("lr", num(s.lr()));
            meta.put("head_lr", num(s.headLr()));
            meta.put("weight_decay", num(s.weightDecay()));
            meta.put("max_grad_norm", num(s.maxGradNorm()));
            meta.put("warmup_steps", Integer.toString(warmupSteps));
            meta.put("total_steps", Integer.toString(totalSteps));
            meta.put("batch", Integer.toString(s.batch()));
            meta.put("epochs", Integer.toString(s.epochs()));
            meta.put("seq", Integer.toString(s.seq()));
            Safetensors.write(file, out, meta);
        } finally {
            try (Stream<Path> files = Files.walk(initial)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            }
        }
    }

    private static String num(double v) {
        return String.format(Locale.ROOT, "%s", v);
    }
}
