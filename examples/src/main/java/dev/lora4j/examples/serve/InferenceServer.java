package dev.lora4j.examples.serve;

import com.sun.net.httpserver.HttpServer;
import dev.lora4j.Torch;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An HTTP JSON inference service for a LoRA-adapted model, on the JDK's own HTTP server
 * ({@code com.sun.net.httpserver}, module {@code jdk.httpserver}).
 *
 * <h2>Why the JDK's server</h2>
 * For a small service embedded in a JVM next to a native library it has what matters and
 * nothing else: no dependency at all (no Jetty, Netty or Kotlin runtime on the class path
 * beside LibTorch), maintained with the JDK itself, HTTP/1.1 keep-alive, a caller-chosen
 * {@link java.util.concurrent.Executor}, and {@link HttpServer#stop(int)}, which stops
 * accepting and waits for running exchanges: graceful shutdown in one call. The executors
 * matter here: exchanges (reading a body, parsing JSON) run on virtual threads, so a slow
 * client holds a cheap virtual thread (and is cut off after {@code bodySeconds}); inference is
 * a blocking native call, and a virtual thread inside a native call pins its carrier, so
 * forwards and adapter loads run on a small pool of platform threads (one per core, one
 * LibTorch thread each) that no client can hold. What it lacks (routing,
 * body limits, JSON) is about a hundred lines in {@link Routes} and {@link Exchanges}. Javalin or
 * Helidon SE would bring routing and limits but also a web framework's dependency tree; for
 * five endpoints on loopback the JDK's server is the better trade.
 *
 * <h2>Lifecycle</h2>
 * {@link #start} binds (loopback by default) and serves; {@link #close} stops accepting,
 * lets running requests finish (up to {@code drainSeconds}), stops the workers and frees the
 * model and every adapter (native memory). Idempotent; safe from a shutdown hook.
 */
public final class InferenceServer implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger("dev.lora4j.examples.serve");

    private final HttpServer server;
    private final ExecutorService http;
    private final ScheduledExecutorService timer;
    private final ExecutorService workers;
    private final AdapterModel model;
    private final TenantClassifier tenants;
    private final Routes routes;
    private final ServiceConfig config;
    private final AtomicBoolean closed = new AtomicBoolean();

    private InferenceServer(HttpServer server, ExecutorService http, ScheduledExecutorService timer, ExecutorService workers,
                            AdapterModel model, TenantClassifier tenants, Routes routes, ServiceConfig config) {
        this.server = server;
        this.tenants = tenants;
        this.http = http;
        this.timer = timer;
        this.workers = workers;
        this.model = model;
        this.routes = routes;
        this.config = config;
    }

    /**
     * Serves {@code base} (a {@code Sequential} that starts and ends with a Linear layer; the
     * server owns it from now on, and closes it even when starting fails) with class names
     * {@code labels} (or null).
     */
    public static InferenceServer start(ServiceConfig config, Sequential base, List<String> labels) throws IOException {
        return start(config, base, labels, null);
    }

    /**
     * As {@link #start(ServiceConfig, Sequential, List)}, with the {@code /classify} endpoint for
     * the tenants of {@code tenants} (null: none); {@code base} may then be null (no MLP endpoints).
     * The server owns {@code tenants} from now on, and closes it even when starting fails.
     */
    static InferenceServer start(ServiceConfig config, Sequential base, List<String> labels, TenantClassifier tenants) throws IOException {
        if (base == null && tenants == null) throw new IllegalArgumentException("serve an MLP, tenants, or both");
        AdapterModel model;
        try {
            model = base == null ? null : new AdapterModel(base);
        } catch (RuntimeException e) {
            if (tenants != null) tenants.close();
            throw e;
        }
        ExecutorService workers = null;
        ExecutorService http = null;
        ScheduledExecutorService timer = null;
        try {
            if (model != null && labels != null && labels.size() != model.outFeatures()) {
                throw new IllegalArgumentException(labels.size() + " labels for " + model.outFeatures() + " outputs");
            }
            AdapterFolders folders = new AdapterFolders(config.adaptersRoot());
            Torch.setNumThreads(config.intraOpThreads());
            // Read once by the JDK server when its classes load: bound connections and slow clients.
            System.setProperty("jdk.httpserver.maxConnections", System.getProperty("jdk.httpserver.maxConnections", "256"));
            System.setProperty("sun.net.httpserver.maxReqTime", System.getProperty("sun.net.httpserver.maxReqTime", "30"));
            InetAddress host = InetAddress.getByName(config.host());
            HttpServer server = HttpServer.create(new InetSocketAddress(host, config.port()), 128);
            workers = Executors.newFixedThreadPool(config.workers(), named());
            // Exchanges (reading bodies, JSON) on virtual threads: a slow client holds one of those, not an inference worker.
            http = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("serve-http-", 0).factory());
            timer = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "serve-body-timer");
                t.setDaemon(true);
                return t;
            });
            Routes routes = new Routes(model, tenants, folders, config, labels, workers, timer);
            server.createContext("/", routes);
            server.setExecutor(http);
            server.start();
            return new InferenceServer(server, http, timer, workers, model, tenants, routes, config);
        } catch (IOException | RuntimeException e) {
            if (http != null) http.shutdownNow();
            if (timer != null) timer.shutdownNow();
            if (workers != null) workers.shutdownNow();
            if (model != null) model.close();
            if (tenants != null) tenants.close();
            throw e;
        }
    }

    private static ThreadFactory named() {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, "serve-" + n.incrementAndGet());
            t.setDaemon(false);
            return t;
        };
    }

    AdapterModel model() {
        return model;
    }

    /** The bound port (the ephemeral one when the config asked for 0). */
    public int port() {
        return server.getAddress().getPort();
    }

    /** The bound address, e.g. {@code http://127.0.0.1:8080}. */
    public String url() {
        return "http://" + server.getAddress().getAddress().getHostAddress() + ":" + port();
    }

    /** Whether the models (and with them all native memory of the service) have been freed. */
    public boolean isClosed() {
        return closed.get() && (model == null || model.isClosed());
    }

    /**
     * Graceful shutdown: new requests are refused (the listening socket closes; requests
     * arriving on open connections get 503), running ones finish (up to {@code drainSeconds}),
     * then the workers stop and the model and adapters are freed.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) return;
        long t0 = System.nanoTime();
        // Refuse new work first (503, and the connection closed): the JDK server keeps serving
        // requests on open keep-alive connections while it stops, so a drain under load never ended.
        routes.stopping();
        server.stop(config.drainSeconds());
        http.shutdown();
        timer.shutdownNow();
        workers.shutdown();
        try {
            if (!workers.awaitTermination(config.drainSeconds() + 5L, TimeUnit.SECONDS)) workers.shutdownNow();
        } catch (InterruptedException e) {
            workers.shutdownNow();
            Thread.currentThread().interrupt();
        }
        if (model != null) model.close();
        if (tenants != null) tenants.close();
        LOG.log(System.Logger.Level.INFO, String.format(java.util.Locale.ROOT, "stopped in %.2f s; model and adapters freed",
                (System.nanoTime() - t0) / 1e9));
    }
}
