package dev.lora4j.examples.serve;

import dev.lora4j.Torch;
import dev.lora4j.examples.FashionMnist;
import dev.lora4j.examples.FineTune;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Serves the Fashion-MNIST MLP of {@link FineTune} (the seed-000 model, pre-trained once and
 * cached in {@code ~/.cache/lora4j}) over HTTP JSON with named adapters loaded from an
 * adapters root; see {@link Routes} for the endpoints and {@link InferenceServer} for the
 * server. Listens on 127.0.0.1 unless {@code --host} says otherwise. SIGTERM or Ctrl-C stops
 * it gracefully: running requests finish, then the model and adapters are freed.
 *
 * <p>Flags: those of {@link ServiceConfig#fromFlags} ({@code --port 8080 --adapters DIR ...}),
 * {@code --load name,name} (adapter folders under the root to load at start), and FineTune's
 * {@code --cache DIR}. With {@code --tenants DIR} it also serves {@code /classify}: tenants' text
 * classifiers over all-MiniLM-L6-v2 ({@link TenantClassifier}), with {@code --pool-budget BYTES}
 * (suffix k, m or g; default 64m), {@code --max-tokens 128}, {@code --max-chars 2000} and
 * {@code --minilm DIR} (the MiniLM folder, made when missing); {@code --no-mlp} leaves the MLP out.
 */
public final class Serve {

    private Serve() {}

    public static void main(String[] args) throws IOException {
        dev.lora4j.examples.Flags.check(args, dev.lora4j.examples.Flags.union(ServiceConfig.FLAGS, FineTune.FLAGS,
                List.of("--load", "--tenants", "--minilm", "--pool-budget", "--max-tokens", "--max-chars")), List.of("--no-mlp"));
        ServiceConfig config = ServiceConfig.fromFlags(args, Path.of("target/adapters"));
        Files.createDirectories(config.adaptersRoot());
        boolean mlp = !java.util.Arrays.asList(args).contains("--no-mlp");
        TenantClassifier tenants = tenants(args);
        Sequential model = null;
        if (mlp) {
            try {
                model = FineTune.pretrainedModel(FineTune.settings(args));
            } catch (IOException | RuntimeException e) {
                if (tenants != null) tenants.close();
                throw e;
            }
        }
        InferenceServer server = InferenceServer.start(config, model, mlp ? List.of(FashionMnist.CLASSES) : null, tenants);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            System.out.printf(Locale.ROOT, "lora4j serve: stopped; native memory freed (model closed: %s, tensors the Cleaner had to free: %d)%n",
                    server.isClosed(), Torch.reclaimedTensorCount());
        }, "serve-shutdown"));
        String load = dev.lora4j.examples.Flags.flag(args, "--load");
        if (load != null && server.model() != null) {
            for (String name : load.split(",")) {
                if (name.isBlank()) continue;
                String n = AdapterFolders.checkName(name.trim());
                NamedAdapter a = server.model().add(n, new AdapterFolders(config.adaptersRoot()), n, config.maxAdapters());
                System.out.printf(Locale.ROOT, "loaded adapter %s (%s, rank %d)%n", a.name(), a.isDyLora() ? "DyLoRA" : "LoRA", a.rank());
            }
        }
        System.out.printf(Locale.ROOT, "lora4j serve: listening on %s (pid %d, adapters root %s, %d workers x %d LibTorch threads)%n",
                server.url(), ProcessHandle.current().pid(), config.adaptersRoot().toAbsolutePath(), config.workers(),
                config.intraOpThreads());
        if (tenants != null) {
            System.out.printf(Locale.ROOT, "lora4j serve: /classify for the tenants under %s (pool budget %d bytes)%n",
                    tenants.settings().tenantsRoot().toAbsolutePath(), tenants.settings().budgetBytes());
        }
    }

    /** The tenant classifier the flags ask for, or null without {@code --tenants}. */
    static TenantClassifier tenants(String[] args) throws IOException {
        String root = dev.lora4j.examples.Flags.flag(args, "--tenants");
        if (root == null) return null;
        String minilm = dev.lora4j.examples.Flags.flag(args, "--minilm");
        String budget = dev.lora4j.examples.Flags.flag(args, "--pool-budget");
        return TenantClassifier.open(new TenantClassifier.Settings(Path.of(root), minilm != null ? Path.of(minilm) : MiniLmCheckpoint.defaultDir(),
                budget != null ? bytes(budget) : 64L << 20, dev.lora4j.examples.Flags.intFlag(args, "--max-tokens", 128),
                dev.lora4j.examples.Flags.intFlag(args, "--max-chars", 2000)));
    }

    /** "123", "64k", "8m", "1g" as bytes (powers of 1024). */
    static long bytes(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        int shift = t.endsWith("k") ? 10 : t.endsWith("m") ? 20 : t.endsWith("g") ? 30 : 0;
        String digits = shift == 0 ? t : t.substring(0, t.length() - 1);
        try {
            long v = Long.parseLong(digits);
            if (v < 0 || v > (Long.MAX_VALUE >> shift)) throw new NumberFormatException();
            return v << shift;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--pool-budget must be a byte count with an optional k, m or g suffix, got '" + s + "'");
        }
    }
}
