package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.examples.Flags;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A bounded loopback load test of {@code POST /classify} ({@code benchmarks/run-serve-load.sh}
 * starts the service and runs it): for each connection count, that many client threads (one
 * {@link HttpClient}, HTTP/1.1, each) send mixed-tenant batches for a fixed time, tenants in
 * rotation (DyLoRA tenants at rotating ranks), while a churn thread unloads and reloads tenants
 * ({@code DELETE /tenants/x}, {@code POST /tenants/x/reload}). Reports requests/s, rows/s,
 * p50/p99 latency, errors, the pool's counters and the service's resident memory (VmRSS of
 * {@code /proc/PID/status}) at start and after each phase, as a markdown table.
 *
 * <p>{@code ClassifyLoad --url http://127.0.0.1:PORT --pid PID --tenants 64 [--dylora-every 4]
 * [--seconds 20] [--connections 1,4,16] [--rows 4] [--churn-ms 200] [--out FILE]}
 */
public final class ClassifyLoad {

    private static final List<String> TEXTS = List.of("Python bindings for the GTK graphical toolkit",
            "fast, safe, concurrent systems programming language compiler", "a tiny puzzle game of falling blocks",
            "network daemon serving files over HTTP with TLS", "Perl module to parse command line options",
            "audio editor and recorder with effects", "vector graphics drawing program", "relational database server",
            "library for reading and writing PNG images", "text editor for programmers with syntax highlighting",
            "mail transfer agent with spam filtering", "Haskell library of persistent data structures",
            "video player supporting many codecs", "Ruby gem for HTTP clients", "kernel module for a network card",
            "KDE desktop widgets and plasma applets");

    private ClassifyLoad() {}

    record Phase(int connections, long requests, long rows, long errors, double seconds, double p50, double p99, double max, long churn,
                 long churnErrors, double rssMib, JsonNode pool, List<String> firstErrors) {}

    public static void main(String[] args) throws Exception {
        Flags.check(args, List.of("--url", "--pid", "--tenants", "--dylora-every", "--seconds", "--rows", "--churn-ms", "--connections", "--out"));
        String url = Flags.flag(args, "--url");
        String pidFlag = Flags.flag(args, "--pid");
        if (url == null || pidFlag == null) throw new IllegalArgumentException("--url URL and --pid PID are required");
        long pid = Flags.longFlag(args, "--pid", 0);
        int tenants = Flags.intFlag(args, "--tenants", 64);
        int every = Flags.intFlag(args, "--dylora-every", 4);
        int seconds = Flags.intFlag(args, "--seconds", 20);
        int rows = Flags.intFlag(args, "--rows", 4);
        int churnMs = Flags.intFlag(args, "--churn-ms", 200);
        String conns = Flags.flag(args, "--connections");
        int[] connections = Arrays.stream((conns != null ? conns : "1,4,16").split(",")).mapToInt(Integer::parseInt).toArray();
        String out = Flags.flag(args, "--out");

        String load0 = loadAverage();
        double rssStart = rssMib(pid);
        JsonNode pool0 = health(url);
        List<Phase> phases = new ArrayList<>();
        for (int c : connections) {
            Phase p = phase(url, pid, c, seconds, tenants, every, rows, churnMs);
            phases.add(p);
            System.out.printf(Locale.ROOT, "%2d connections: %d requests, %.1f req/s, p50 %.1f ms, p99 %.1f ms, %d errors, %d churn ops, RSS %.1f MiB%n",
                    c, p.requests(), p.requests() / p.seconds(), p.p50(), p.p99(), p.errors(), p.churn(), p.rssMib());
        }
        String report = report(args, load0, loadAverage(), rssStart, pool0, phases, tenants, every, seconds, rows, churnMs);
        System.out.print(report);
        if (out != null) Files.writeString(Path.of(out), report);
    }

    private static Phase phase(String url, long pid, int c, int seconds, int tenants, int every, int rows, int churnMs) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong errors = new AtomicLong();
        AtomicLong churn = new AtomicLong();
        AtomicLong churnErrors = new AtomicLong();
        ConcurrentLinkedQueue<String> firstErrors = new ConcurrentLinkedQueue<>();
        ExecutorService ex = Executors.newFixedThreadPool(c + 1);
        List<Future<long[]>> clients = new ArrayList<>();
        long t0 = System.nanoTime();
        try {
            for (int i = 0; i < c; i++) {
                int id = i;
                clients.add(ex.submit(() -> client(url, id, c, tenants, every, rows, stop, errors, firstErrors)));
            }
            Future<?> churner = ex.submit(() -> {
                HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
                Random rnd = new Random(15 + c);
                while (!stop.get()) {
                    String t = TenantFolders.name(rnd.nextInt(tenants));
                    boolean reload = rnd.nextBoolean();
                    try {
                        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + "/tenants/" + t + (reload ? "/reload" : "")))
                                .timeout(Duration.ofSeconds(30));
                        b.method(reload ? "POST" : "DELETE", HttpRequest.BodyPublishers.noBody());
                        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
                        if (r.statusCode() != 200) {
                            churnErrors.incrementAndGet();
                            if (firstErrors.size() < 5) firstErrors.add("churn " + r.statusCode() + ": " + r.body());
                        }
                        churn.incrementAndGet();
                    } catch (IOException e) {
                        churnErrors.incrementAndGet();
                    }
                    Thread.sleep(churnMs);
                }
                return null;
            });
            Thread.sleep(seconds * 1000L);
            stop.set(true);
            long[][] lat = new long[c][];
            for (int i = 0; i < c; i++) lat[i] = clients.get(i).get();
            churner.get();
            double elapsed = (System.nanoTime() - t0) / 1e9;
            long[] all = Arrays.stream(lat).flatMapToLong(Arrays::stream).sorted().toArray();
            return new Phase(c, all.length, (long) all.length * rows, errors.get(), elapsed, pct(all, 0.50), pct(all, 0.99),
                    all.length == 0 ? 0 : all[all.length - 1] / 1e6, churn.get(), churnErrors.get(), rssMib(pid), health(url),
                    List.copyOf(firstErrors));
        } finally {
            stop.set(true);
            ex.shutdownNow();
        }
    }

    /** One connection's loop: mixed batches of {@code rows} tenants in rotation; returns the latencies (ns) of successful requests. */
    private static long[] client(String url, int id, int c, int tenants, int every, int rows, AtomicBoolean stop, AtomicLong errors,
                                 ConcurrentLinkedQueue<String> firstErrors) {
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
        long[] lat = new long[1 << 16];
        int n = 0;
        long next = id * 7L;
        while (!stop.get()) {
            ObjectNode body = Exchanges.JSON.createObjectNode();
            ArrayNode inputs = body.putArray("inputs");
            for (int r = 0; r < rows; r++) {
                int k = (int) (next++ % tenants);
                ObjectNode row = inputs.addObject();
                row.put("text", TEXTS.get((int) ((next * 31 + r) % TEXTS.size())));
                row.put("tenant", TenantFolders.name(k));
                if (every > 0 && k % every == every - 1) row.put("rank", 2 + (int) (next % 3) * 3); // 2, 5 or 8 of r_max 8
            }
            long t0 = System.nanoTime();
            try {
                HttpRequest req = HttpRequest.newBuilder(URI.create(url + "/classify")).timeout(Duration.ofSeconds(60))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofByteArray(Exchanges.JSON.writeValueAsBytes(body)))
                        .build();
                HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
                long dt = System.nanoTime() - t0;
                if (resp.statusCode() == 200 && Exchanges.JSON.readTree(resp.body()).get("results").size() == rows) {
                    if (n == lat.length) lat = Arrays.copyOf(lat, n * 2);
                    lat[n++] = dt;
                } else {
                    errors.incrementAndGet();
                    if (firstErrors.size() < 5) firstErrors.add(resp.statusCode() + ": " + AdapterFolders.clip(resp.body()));
                }
            } catch (IOException e) {
                errors.incrementAndGet();
                if (firstErrors.size() < 5) firstErrors.add(e.toString());
            } catch (InterruptedException e) {
                break;
            }
        }
        return Arrays.copyOf(lat, n);
    }

    private static double pct(long[] sorted, double q) {
        if (sorted.length == 0) return 0;
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)] / 1e6;
    }

    static double rssMib(long pid) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
        throw new IOException("no VmRSS in /proc/" + pid + "/status");
    }

    private static String loadAverage() throws IOException {
        String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
        return f[0] + " " + f[1] + " " + f[2];
    }

    private static JsonNode health(String url) throws IOException, InterruptedException {
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + "/health")).build(), HttpResponse.BodyHandlers.ofString());
        return Exchanges.JSON.readTree(r.body()).path("pool");
    }

    private static String report(String[] args, String loadBefore, String loadAfter, double rssStart, JsonNode pool0, List<Phase> phases,
                                 int tenants, int every, int seconds, int rows, int churnMs) {
        StringBuilder b = new StringBuilder();
        b.append("# /classify load test\n\n");
        JsonNode last = phases.isEmpty() ? pool0 : phases.get(phases.size() - 1).pool();
        long budget = pool0.path("budget_bytes").asLong();
        long each = last.path("resident_bytes").asLong() / Math.max(1, last.path("size").asLong());
        b.append(String.format(Locale.ROOT, "`benchmarks/run-serve-load.sh` on %s: %d cores, %s. Service: all-MiniLM-L6-v2 shared by %d tenants "
                + "(random PEFT adapters from `TenantFolders`: LoRA r 8 on query/value, every %d-th DyLoRA; untrained, for the machinery only), "
                + "pool budget %d bytes (about %d adapters of about %d bytes), the client on the same cores.%n%n",
                java.time.LocalDate.now(java.time.ZoneOffset.UTC), Runtime.getRuntime().availableProcessors(),
                System.getProperty("java.vm.name") + " " + Runtime.version(), tenants, every, budget, budget / Math.max(1, each), each));
        b.append(String.format(Locale.ROOT, "Each request: %d rows (`inputs` objects), %d consecutive tenants in rotation (DyLoRA ones at rank 2, 5 or 8), "
                + "one HTTP/1.1 client per connection, %d s per phase; meanwhile a churn thread unloads (`DELETE /tenants/x`) or reloads "
                + "(`POST /tenants/x/reload`) a random tenant every %d ms. Load average before: %s; after: %s (other work on these cores "
                + "lowers the figures).%n%n", rows, rows, seconds, churnMs, loadBefore, loadAfter));
        b.append("| connections | requests | requests/s | rows/s | p50 ms | p99 ms | max ms | errors | churn ops (errors) | pool loads / evictions / unloads | pool resident | RSS after, MiB |\n");
        b.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Phase p : phases) {
            b.append(String.format(Locale.ROOT, "| %d | %,d | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %d (%d) | %d / %d / %d | %d (%.1f MiB) | %.1f |%n",
                    p.connections(), p.requests(), p.requests() / p.seconds(), p.rows() / p.seconds(), p.p50(), p.p99(), p.max(), p.errors(),
                    p.churn(), p.churnErrors(), p.pool().path("loads").asLong(), p.pool().path("evictions").asLong(),
                    p.pool().path("unloads").asLong(), p.pool().path("size").asLong(), p.pool().path("resident_bytes").asLong() / 1048576.0,
                    p.rssMib()));
        }
        b.append(String.format(Locale.ROOT, "%nService resident memory (VmRSS): %.1f MiB at start", rssStart));
        for (Phase p : phases) b.append(String.format(Locale.ROOT, ", %.1f after %d connection(s)", p.rssMib(), p.connections()));
        b.append(". Pool counters are cumulative (hits ").append(phases.isEmpty() ? 0 : phases.get(phases.size() - 1).pool().path("hits").asLong())
                .append(", misses ").append(phases.isEmpty() ? 0 : phases.get(phases.size() - 1).pool().path("misses").asLong()).append(" at the end).\n");
        for (Phase p : phases) {
            if (!p.firstErrors().isEmpty()) b.append("\nFirst errors at ").append(p.connections()).append(" connection(s): ").append(p.firstErrors()).append('\n');
        }
        return b.toString();
    }
}
