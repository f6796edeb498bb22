package dev.lora4j.examples.text;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.examples.TextFineTune;
import dev.lora4j.examples.data.DebianPackage;
import dev.lora4j.examples.data.PackageDataset;
import dev.lora4j.examples.data.Tenant;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TextFineTune's LoRA path on a small random BERT (2 layers, hidden 32, MiniLM's real
 * tokenizer) and 64 made-up package descriptions of two sections, seq 32, 24 steps: the loss
 * goes down, the PEFT folder holds PEFT's keys for a module with {@code bert} and
 * {@code classifier} ({@code modules_to_save} saved whole under the module's own name, as
 * PEFT's get_peft_model_state_dict writes it), the folder loaded into a fresh model gives the
 * same logits, and the export replays the run (splits, one permutation per epoch, initial
 * factors with lora_B zero).
 */
public class TextFineTuneTest {

    @TempDir
    static Path dir;

    static Path checkpoint;

    @BeforeAll
    static void smallCheckpoint() throws Exception {
        checkpoint = smallCheckpoint(dir.resolve("small-bert"));
    }

    /** A random BERT (2 layers, hidden 32) with MiniLM's tokenizer, saved as an HF checkpoint in {@code checkpoint}. */
    public static Path smallCheckpoint(Path checkpoint) throws Exception {
        BertConfig c = BertConfig.of(30522, 32, 2, 4, 64);
        Torch.manualSeed(3);
        try (BertModel m = new BertModel(c, false)) {
            BertLoader.save(m, c, checkpoint);
        }
        try (InputStream in = TextFineTuneTest.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            assertNotNull(in, "MiniLM's tokenizer.json is on the class path");
            Files.copy(in, MiniLmCheckpoint.tokenizer(checkpoint));
        }
        return checkpoint;
    }

    /** 40 packages per section: "python3-x: Python 3 library for x" against "libx-perl: Perl module for x". */
    public static PackageDataset data(Tenant tenant) {
        String[] topics = {"parsing JSON", "HTTP requests", "image files", "unit testing", "date handling", "XML documents",
                "command line options", "database access", "logging", "cryptography"};
        String[] kinds = {"library", "module", "bindings", "tools"};
        List<DebianPackage> packages = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            String topic = topics[i % topics.length] + " " + kinds[i / topics.length];
            packages.add(new DebianPackage("python3-p" + i, "python", "Python 3 " + kinds[i % 4] + " for " + topic, ""));
            packages.add(new DebianPackage("libp" + i + "-perl", "perl", "Perl " + kinds[(i + 1) % 4] + " for " + topic, ""));
        }
        return PackageDataset.build(packages, tenant, new PackageDataset.Options(400, 15, 0.1, 0.1));
    }

    @Test
    void loraLowersTheLossSavesPeftKeysAndReloadsToTheSameLogits() throws Exception {
        Tenant tenant = new Tenant("test", List.of("python", "perl"));
        PackageDataset data = data(tenant);
        Path export = dir.resolve("export.safetensors");
        var s = new TextFineTune.Settings(tenant, 64, 6, 32, 16, 2e-2, 5e-2, TextFineTune.Mode.LORA, 8, 16, 0.1, 0.01, 1.0, 0,
                dir.resolve("out"), dir.resolve("cache"), null, export, false);
        TextFineTune.Result r = TextFineTune.run(s, data, checkpoint);

        List<Double> loss = r.log().losses();
        assertEquals(24, loss.size(), "64 samples, batch 16, 6 epochs");
        double first = loss.subList(0, 4).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = loss.subList(20, 24).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(last < 0.6 * first, "loss " + first + " -> " + last);
        assertEquals(2 * 2 * (8 * 32 + 32 * 8) + 32 * 2 + 2, r.trainableParameters(), "LoRA on q and v of 2 layers, plus the head");

        // PEFT's keys: LoRA factors by module path, the head whole under its own name.
        Set<String> expected = new HashSet<>();
        for (int layer = 0; layer < 2; layer++) {
            for (String m : List.of("query", "value")) {
                for (String f : List.of("lora_A", "lora_B")) {
                    expected.add("base_model.model.bert.encoder.layer." + layer + ".attention.self." + m + "." + f + ".weight");
                }
            }
        }
        expected.add("base_model.model.classifier.weight");
        expected.add("base_model.model.classifier.bias");
        try (Safetensors.Contents c = Safetensors.read(r.adapter().resolve(PeftAdapter.WEIGHTS))) {
            assertEquals(expected, c.tensors().keySet());
            assertArrayEquals(new long[] {8, 32}, c.tensors().get("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight").shape());
            assertArrayEquals(new long[] {32, 8}, c.tensors().get("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight").shape());
            assertArrayEquals(new long[] {2, 32}, c.tensors().get("base_model.model.classifier.weight").shape());
            assertEquals("pt", c.metadata().get("format"));
        }
        String config = Files.readString(r.adapter().resolve(PeftAdapter.CONFIG));
        assertTrue(config.replaceAll("\\s", "").contains("\"modules_to_save\":[\"classifier\"]"), config);
        assertTrue(config.replaceAll("\\s", "").contains("\"r\":8"), config);

        // The folder in a fresh model: the same logits, bit for bit.
        assertEquals(0.0, r.reloadedMaxLogitDifference());
        assertArrayEquals(r.test().predictions(), r.reloaded().predictions());
        assertTrue(Files.size(r.plot()) > 10_000, "a PNG was written");

        // The export replays the run.
        try (Safetensors.Contents c = Safetensors.read(export)) {
            Tensor order = c.tensors().get("train_order");
            assertArrayEquals(new long[] {6, 64}, order.shape());
            long[] o = order.toLongArray();
            for (int e = 0; e < 6; e++) {
                int epoch = e;
                Set<Long> rows = IntStream.range(0, 64).mapToObj(i -> o[epoch * 64 + i]).collect(Collectors.toSet());
                assertEquals(64, rows.size(), "epoch " + e + " is a permutation");
            }
            assertArrayEquals(new long[] {64}, c.tensors().get("train.labels").shape());
            assertEquals(c.tensors().get("train.input_ids").size(1), c.tensors().get("train.attention_mask").size(1));
            try (TensorScope scope = TensorScope.open()) { // the temporaries, not left to the safety net
                assertEquals(0.0, c.tensors().get("init.base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight")
                        .abs().sum().item(), "lora_B starts at zero");
            }
            assertEquals("24", c.metadata().get("total_steps"));
            assertEquals("3", c.metadata().get("warmup_steps"));
        }
    }
}
