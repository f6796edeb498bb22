package dev.lora4j.examples.serve;

import dev.lora4j.Torch;
import dev.lora4j.examples.FashionMnist;
import dev.lora4j.examples.FineTune;
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
 * {@code --cache DIR}.
 */
public final class Serve {

    private Serve() {}

    public static void main(String[] args) throws IOException {
        ServiceConfig config = ServiceConfig.fromFlags(args, Path.of("target/adapters"));
        Files.createDirectories(config.adaptersRoot());
        FineTune.Settings settings = FineTune.settings(args);
        Sequential model = FineTune.pretrainedModel(settings);
        InferenceServer server = InferenceServer.start(config, model, List.of(FashionMnist.CLASSES));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            System.out.printf(Locale.ROOT, "lora4j serve: stopped; native memory freed (model closed: %s, tensors the Cleaner had to free: %d)%n",
                    server.isClosed(), Torch.reclaimedTensorCount());
        }, "serve-shutdown"));
        String load = dev.lora4j.examples.Flags.flag(args, "--load");
        if (load != null) {
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
    }
}
