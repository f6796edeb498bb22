package dev.lora4j.examples.serve;

import dev.lora4j.examples.Flags;
import java.nio.file.Path;

/**
 * The service's settings. Every limit is explicit: the body size, the rows per request, the
 * adapters held at once, the worker threads, and how long shutdown waits for running requests.
 *
 * @param host the address to bind: loopback unless told otherwise
 * @param port 0 for an ephemeral port
 * @param adaptersRoot the only folder adapters are loaded from
 * @param maxBodyBytes larger bodies get 413 (the default, 1 MiB, holds about 64 rows of JSON pixels)
 * @param maxRows rows per predict request (413 beyond)
 * @param maxAdapters adapters loaded at once (409 beyond)
 * @param workers inference threads (forwards and adapter loads run on them; each uses
 *     {@code intraOpThreads} LibTorch threads); reading requests happens on other threads, so a
 *     slow client never holds one
 * @param intraOpThreads LibTorch's intra-op threads ({@code Torch.setNumThreads})
 * @param drainSeconds how long shutdown waits for running requests before closing connections
 * @param bodySeconds how long a client may take to send its request body; slower ones are disconnected
 */
public record ServiceConfig(String host, int port, Path adaptersRoot, int maxBodyBytes, int maxRows, int maxAdapters,
                            int workers, int intraOpThreads, int drainSeconds, int bodySeconds) {

    public ServiceConfig {
        if (port < 0 || port > 65535) throw new IllegalArgumentException("port must be in 0..65535, got " + port);
        if (maxBodyBytes < 1024) throw new IllegalArgumentException("maxBodyBytes must be >= 1024, got " + maxBodyBytes);
        if (maxRows < 1 || maxAdapters < 1 || workers < 1 || intraOpThreads < 1 || drainSeconds < 0 || bodySeconds < 1) {
            throw new IllegalArgumentException("maxRows, maxAdapters, workers, intraOpThreads and bodySeconds must be >= 1, drainSeconds >= 0");
        }
    }

    /** Loopback, an ephemeral port, the given root, and the defaults below. */
    public static ServiceConfig defaults(Path adaptersRoot) {
        int cores = Runtime.getRuntime().availableProcessors();
        return new ServiceConfig("127.0.0.1", 0, adaptersRoot, 1 << 20, 64, 32, cores, 1, 10, 10);
    }

    /**
     * From flags {@code --host --port --adapters --max-body --max-rows --max-adapters --workers
     * --intra-op-threads --drain-seconds --body-seconds}.
     */
    /** The flags {@link #fromFlags} reads. */
    public static final java.util.List<String> FLAGS = java.util.List.of("--host", "--port", "--adapters", "--max-body", "--max-rows",
            "--max-adapters", "--workers", "--intra-op-threads", "--drain-seconds", "--body-seconds");

    public static ServiceConfig fromFlags(String[] args, Path defaultRoot) {
        ServiceConfig d = defaults(defaultRoot);
        String root = Flags.flag(args, "--adapters");
        String host = Flags.flag(args, "--host");
        return new ServiceConfig(host != null ? host : d.host(), Flags.intFlag(args, "--port", 8080),
                root != null ? Path.of(root) : d.adaptersRoot(), Flags.intFlag(args, "--max-body", d.maxBodyBytes()),
                Flags.intFlag(args, "--max-rows", d.maxRows()), Flags.intFlag(args, "--max-adapters", d.maxAdapters()),
                Flags.intFlag(args, "--workers", d.workers()), Flags.intFlag(args, "--intra-op-threads", d.intraOpThreads()),
                Flags.intFlag(args, "--drain-seconds", d.drainSeconds()), Flags.intFlag(args, "--body-seconds", d.bodySeconds()));
    }

    public ServiceConfig withPort(int p) {
        return new ServiceConfig(host, p, adaptersRoot, maxBodyBytes, maxRows, maxAdapters, workers, intraOpThreads, drainSeconds, bodySeconds);
    }

    public ServiceConfig withMaxBodyBytes(int b) {
        return new ServiceConfig(host, port, adaptersRoot, b, maxRows, maxAdapters, workers, intraOpThreads, drainSeconds, bodySeconds);
    }

    public ServiceConfig withMaxAdapters(int n) {
        return new ServiceConfig(host, port, adaptersRoot, maxBodyBytes, maxRows, n, workers, intraOpThreads, drainSeconds, bodySeconds);
    }

}
