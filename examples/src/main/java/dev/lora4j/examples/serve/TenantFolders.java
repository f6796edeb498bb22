package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.Torch;
import dev.lora4j.examples.Flags;
import dev.lora4j.examples.data.Tenant;
import dev.lora4j.examples.text.MeanPoolingClassifier;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Linear;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Tenant adapter folders for the {@code /classify} service: PEFT folders of a
 * {@link MeanPoolingClassifier} over all-MiniLM-L6-v2 (LoRA on {@code query} and {@code value},
 * the classifier as {@code modules_to_save}), with two fields of lora4j's own in
 * {@code adapter_config.json}: {@value #LABELS} (the label names, one per classifier row) and,
 * for DyLoRA tenants, {@value DyLoraFolders#MARKER} (the service may then serve them at any rank
 * 1..r). PEFT reports or ignores both.
 *
 * <p>{@link #createRandom} makes <b>randomly initialised</b> tenants, for tests and load tests of
 * the serving machinery only: A as {@link Lora#wrap} initialises it (kaiming-uniform), B drawn
 * from N(0, 0.05²) instead of zeros (so every tenant changes the encoder's output), the head a
 * fresh Linear, all seeded; their labels are those of the three Debian package tenants
 * ({@link Tenant#defaults()}) in rotation, but their answers are not trained and mean nothing.
 *
 * <p>{@code java ... TenantFolders --out DIR --tenants 64 [--seed 15] [--dylora-every 4] [--minilm DIR]}
 */
public final class TenantFolders {

    /** The config field holding a tenant's label names (one per row of its classifier). */
    public static final String LABELS = "lora4j_labels";

    private TenantFolders() {}

    /** The folder name of tenant k. */
    public static String name(int k) {
        return String.format(Locale.ROOT, "tenant-%03d", k);
    }

    /** The LoRA config of the generated tenants: rank 8, α 16, query and value (PEFT's default for BERT). */
    public static LoraConfig config() {
        return LoraConfig.of(8, 16).withTargetModules("query", "value");
    }

    /**
     * Writes {@code n} random tenants {@code tenant-000 ...} under {@code root} over {@code encoder}
     * (used, not kept: its LoRA layers are left without adapters); every {@code dyloraEvery}-th
     * one (k % dyloraEvery == dyloraEvery - 1; 0: none) is marked DyLoRA. Returns the names.
     */
    public static List<String> createRandom(BertModel encoder, Path root, int n, long seed, int dyloraEvery) throws IOException {
        List<String> names = new ArrayList<>();
        MeanPoolingClassifier model = new MeanPoolingClassifier(encoder, new Linear(encoder.config().hiddenSize(), 2));
        for (int k = 0; k < n; k++) {
            Torch.manualSeed(seed * 100_003 + k);
            Tenant t = Tenant.defaults().get(k % Tenant.defaults().size());
            String name = name(k);
            model.replaceChild("classifier", new Linear(encoder.config().hiddenSize(), t.sections().size())).close();
            Lora.addAdapter(model, name, config());
            try (var ng = Torch.noGrad()) {
                for (LoraLayer l : Lora.loraLayers(model).values()) if (l.hasAdapter(name)) Init.normal_(l.loraB(name), 0, 0.05);
            }
            boolean dylora = dyloraEvery > 0 && k % dyloraEvery == dyloraEvery - 1;
            save(model, name, config(), root.resolve(name), t.sections(), dylora);
            Lora.deleteAdapter(model, name);
            names.add(name);
        }
        // the encoder stays the caller's: take it out of the wrapper before freeing the wrapper's head
        model.replaceChild("bert", new Linear(1, 1));
        model.close();
        return names;
    }

    /**
     * Saves adapter {@code adapter} of {@code model} (its LoRA factors and its {@code classifier})
     * as a tenant folder with {@code labels} (and the DyLoRA marker), readers seeing the old
     * folder or the new one, whole.
     */
    public static void save(MeanPoolingClassifier model, String adapter, LoraConfig config, Path dir, List<String> labels, boolean dylora)
            throws IOException {
        Path tmp = Files.createTempDirectory("lora4j-tenant");
        try {
            PeftAdapter.save(model, adapter, config, List.of("classifier"), tmp);
            JsonNode read = Exchanges.JSON.readTree(tmp.resolve(PeftAdapter.CONFIG).toFile());
            ObjectNode cfg = (ObjectNode) read;
            cfg.set(LABELS, Exchanges.JSON.valueToTree(labels));
            if (dylora) cfg.put(DyLoraFolders.MARKER, true);
            try (Safetensors.Contents w = Safetensors.read(tmp.resolve(PeftAdapter.WEIGHTS))) {
                PeftAdapter.write(dir, Exchanges.JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(cfg), w.tensors());
            }
        } finally {
            AdapterFolders.deleteSnapshot(tmp);
        }
    }

    public static void main(String[] args) throws IOException {
        Flags.check(args, List.of("--out", "--tenants", "--seed", "--dylora-every", "--minilm"));
        String out = Flags.flag(args, "--out");
        if (out == null) throw new IllegalArgumentException("--out DIR is required");
        int n = Flags.intFlag(args, "--tenants", 64);
        long seed = Flags.longFlag(args, "--seed", 15);
        int every = Flags.intFlag(args, "--dylora-every", 4);
        String minilm = Flags.flag(args, "--minilm");
        Path dir = MiniLmCheckpoint.ensureFolder(minilm != null ? Path.of(minilm) : MiniLmCheckpoint.defaultDir());
        Files.createDirectories(Path.of(out));
        try (BertModel encoder = BertLoader.bertModel(dir)) {
            long t0 = System.nanoTime();
            List<String> names = createRandom(encoder, Path.of(out), n, seed, every);
            System.out.printf(Locale.ROOT, "wrote %d random tenant folders (%s ... %s) under %s in %.1f s%n", names.size(), names.get(0),
                    names.get(names.size() - 1), out, (System.nanoTime() - t0) / 1e9);
        }
    }
}
