package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import dev.lora4j.Torch;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;

/**
 * The endpoints:
 *
 * <pre>
 * GET    /health            200 {"status":"ok", ...}
 * GET    /adapters          200 {"adapters":[{name, kind, rank, layers, folder}, ...]}
 * POST   /adapters/{name}   201; body {"path": "folder under the adapters root"} or empty (path = name)
 * DELETE /adapters/{name}   200 {"deleted": name}
 * POST   /predict           200 {"predictions":[{"class", "label", "logits"}, ...]}
 * POST   /classify          200 {"results":[{"tenant", "label", "labels", "probabilities", "rank", "kind"}, ...]}
 * GET    /tenants           200 {"resident":[...], "pool":{...}}
 * POST   /tenants/{name}/reload  200 {"tenant", "unloaded", "kind", "rank", "labels", "bytes"}
 * DELETE /tenants/{name}    200 {"tenant", "unloaded"}
 * </pre>
 *
 * The MLP endpoints ({@code /adapters}, {@code /predict}) exist when the service serves the MLP,
 * the tenant endpoints ({@code /classify}, {@code /tenants}) when it has a tenants root
 * ({@link TenantClassifier}, {@link ClassifyRequest}); otherwise they are 404.
 *
 * Refusals are {@code {"error": ..., "status": ...}} with 400 (malformed), 404 (no such route,
 * adapter or folder), 405 (wrong method), 409 (name taken, adapter limit), 413 (body or batch
 * too large), 415 (not JSON), 422 (values that cannot be served), 503 (shutting down).
 *
 * <p>Threads: requests are read and parsed on the HTTP server's threads (a client slower than
 * {@code bodySeconds} is disconnected); forwards and adapter loads run on the inference pool,
 * so a slow client never holds an inference thread.
 */
final class Routes implements HttpHandler {

    private static final System.Logger LOG = System.getLogger("dev.lora4j.examples.serve");

    private final AdapterModel model;
    private final TenantClassifier tenants;
    private final AdapterFolders folders;
    private final ServiceConfig config;
    private final List<String> labels;
    private final ExecutorService inference;
    private final ScheduledExecutorService timer;
    private final long started = System.nanoTime();
    private volatile boolean stopping;

    Routes(AdapterModel model, TenantClassifier tenants, AdapterFolders folders, ServiceConfig config, List<String> labels,
           ExecutorService inference, ScheduledExecutorService timer) {
        this.model = model;
        this.tenants = tenants;
        this.folders = folders;
        this.config = config;
        this.labels = labels;
        this.inference = inference;
        this.timer = timer;
    }

    /** Runs {@code work} on the inference pool and waits for it; its ApiError or RuntimeException is rethrown here. */
    private <T> T onInference(Callable<T> work) {
        Future<T> f;
        try {
            f = inference.submit(work);
        } catch (RejectedExecutionException e) {
            throw new ApiError(503, "the service is shutting down");
        }
        try {
            return f.get();
        } catch (InterruptedException e) {
            f.cancel(false);
            Thread.currentThread().interrupt();
            throw new ApiError(503, "the service is shutting down");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException(e.getCause());
        }
    }

    void stopping() {
        stopping = true;
    }

    @Override
    public void handle(HttpExchange ex) throws IOException {
        try (ex) {
            int status = 200;
            JsonNode answer;
            try {
                if (stopping) throw new ApiError(503, "the service is shutting down");
                Answer a = route(ex);
                status = a.status();
                answer = a.body();
            } catch (ApiError e) {
                status = e.status();
                answer = Exchanges.error(status, e.getMessage());
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "request " + ex.getRequestMethod() + " " + ex.getRequestURI() + " failed", e);
                status = 500;
                answer = Exchanges.error(500, "internal error: " + e.getClass().getSimpleName() + ": " + AdapterFolders.clip(e.getMessage()));
            }
            if (stopping) ex.getResponseHeaders().set("Connection", "close"); // no further request on this connection
            if (status == 405) ex.getResponseHeaders().set("Allow", allowed(ex.getRequestURI().getPath()));
            Exchanges.send(ex, status, answer);
        }
    }

    private record Answer(int status, JsonNode body) {}

    private Answer route(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        String method = ex.getRequestMethod();
        if (path.equals("/health")) {
            if (!method.equals("GET")) throw new ApiError(405, "use GET /health");
            return new Answer(200, health());
        }
        if (path.equals("/classify") || path.equals("/tenants") || path.startsWith("/tenants/")) return tenantRoute(ex, path, method);
        if (model == null && (path.equals("/adapters") || path.startsWith("/adapters/") || path.equals("/predict"))) {
            throw ApiError.notFound("this service serves no MLP: " + AdapterFolders.clip(path) + " is not available");
        }
        if (path.equals("/adapters")) {
            if (!method.equals("GET")) throw new ApiError(405, "use GET /adapters");
            return new Answer(200, list());
        }
        if (path.startsWith("/adapters/")) {
            String name = AdapterFolders.checkName(path.substring("/adapters/".length()));
            return switch (method) {
                case "POST" -> new Answer(201, load(ex, name));
                case "DELETE" -> new Answer(200, delete(name));
                default -> throw new ApiError(405, "use POST or DELETE /adapters/{name}");
            };
        }
        if (path.equals("/predict")) {
            if (!method.equals("POST")) throw new ApiError(405, "use POST /predict");
            return new Answer(200, predict(Exchanges.json(ex, config.maxBodyBytes(), config.bodySeconds(), timer)));
        }
        throw ApiError.notFound("no route " + AdapterFolders.clip(path) + " (routes: GET /health, GET /adapters, POST|DELETE /adapters/{name},"
                + " POST /predict, POST /classify, GET /tenants, POST /tenants/{name}/reload, DELETE /tenants/{name})");
    }

    private static String allowed(String path) {
        if (path.startsWith("/adapters/")) return "POST, DELETE";
        if (path.startsWith("/tenants/")) return path.endsWith("/reload") ? "POST" : "DELETE";
        return path.equals("/predict") || path.equals("/classify") ? "POST" : "GET";
    }

    private Answer tenantRoute(HttpExchange ex, String path, String method) throws IOException {
        if (tenants == null) throw ApiError.notFound("this service has no tenants root (start it with --tenants DIR): " + AdapterFolders.clip(path) + " is not available");
        if (path.equals("/classify")) {
            if (!method.equals("POST")) throw new ApiError(405, "use POST /classify");
            JsonNode body = Exchanges.json(ex, config.maxBodyBytes(), config.bodySeconds(), timer);
            ClassifyRequest r = ClassifyRequest.parse(body, config.maxRows(), tenants.settings().maxChars());
            return new Answer(200, classified(onInference(() -> tenants.classify(r))));
        }
        if (path.equals("/tenants")) {
            if (!method.equals("GET")) throw new ApiError(405, "use GET /tenants");
            ObjectNode n = Exchanges.JSON.createObjectNode();
            ArrayNode arr = n.putArray("resident");
            tenants.resident().forEach(arr::add);
            n.set("pool", poolStats());
            return new Answer(200, n);
        }
        String rest = path.substring("/tenants/".length());
        if (rest.endsWith("/reload")) {
            String name = AdapterFolders.checkName(rest.substring(0, rest.length() - "/reload".length()));
            if (!method.equals("POST")) throw new ApiError(405, "use POST /tenants/{name}/reload");
            return new Answer(200, Exchanges.JSON.valueToTree(onInference(() -> tenants.reload(name))));
        }
        String name = AdapterFolders.checkName(rest);
        if (!method.equals("DELETE")) throw new ApiError(405, "use DELETE /tenants/{name} (or POST /tenants/{name}/reload)");
        ObjectNode n = Exchanges.JSON.createObjectNode();
        n.put("tenant", name);
        n.put("unloaded", tenants.unload(name)); // cheap, and not queued behind forwards: on this thread
        return new Answer(200, n);
    }

    private static JsonNode classified(List<TenantClassifier.Row> rows) {
        ObjectNode n = Exchanges.JSON.createObjectNode();
        ArrayNode arr = n.putArray("results");
        for (TenantClassifier.Row r : rows) {
            ObjectNode o = arr.addObject();
            o.put("tenant", r.tenant());
            o.put("label", r.label());
            o.put("index", r.index());
            ArrayNode l = o.putArray("labels");
            r.labels().forEach(l::add);
            ArrayNode p = o.putArray("probabilities");
            for (float v : r.probabilities()) p.add(v);
            o.put("rank", r.rank());
            o.put("kind", r.dylora() ? "dylora" : "lora");
        }
        return n;
    }

    private ObjectNode poolStats() {
        var s = tenants.stats();
        ObjectNode p = Exchanges.JSON.createObjectNode();
        p.put("size", s.size());
        p.put("resident_bytes", s.bytes());
        p.put("budget_bytes", s.budgetBytes());
        p.put("pinned", s.pinned());
        p.put("hits", s.hits());
        p.put("misses", s.misses());
        p.put("loads", s.loads());
        p.put("evictions", s.evictions());
        p.put("unloads", s.unloads());
        return p;
    }

    // ------------------------------------------------------------------ endpoints

    private JsonNode health() {
        if (stopping || (model != null && model.isClosed())) throw new ApiError(503, "the service is shutting down");
        ObjectNode n = Exchanges.JSON.createObjectNode();
        n.put("status", "ok");
        if (model != null) {
            n.put("adapters", model.adapterCount());
            ObjectNode m = n.putObject("model");
            m.put("in_features", model.inFeatures());
            m.put("out_features", model.outFeatures());
            m.put("parameters", model.parameterCount());
        }
        if (tenants != null) n.set("pool", poolStats());
        n.put("libtorch", Torch.version());
        n.put("uptime_seconds", (System.nanoTime() - started) / 1_000_000_000L);
        return n;
    }

    private JsonNode list() {
        ObjectNode n = Exchanges.JSON.createObjectNode();
        ArrayNode arr = n.putArray("adapters");
        for (NamedAdapter a : model.adapters()) arr.add(describe(a));
        return n;
    }

    private ObjectNode describe(NamedAdapter a) {
        ObjectNode o = Exchanges.JSON.createObjectNode();
        o.put("name", a.name());
        o.put("kind", a.isDyLora() ? "dylora" : "lora");
        o.put("rank", a.rank());
        ArrayNode l = o.putArray("layers");
        a.layers().forEach(l::add);
        o.put("folder", folders.root().relativize(a.folder()).toString());
        ArrayNode r = o.putArray("reported_config_fields");
        a.reported().forEach(r::add);
        return o;
    }

    private JsonNode load(HttpExchange ex, String name) throws IOException {
        byte[] body = Exchanges.body(ex, config.maxBodyBytes(), config.bodySeconds(), timer);
        String relative = name;
        if (body.length > 0) {
            String type = ex.getRequestHeaders().getFirst("Content-Type");
            if (type == null || !type.toLowerCase(java.util.Locale.ROOT).startsWith("application/json")) {
                throw new ApiError(415, "the body must be application/json");
            }
            JsonNode b;
            try {
                b = Exchanges.JSON.readTree(body);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw ApiError.badRequest("malformed JSON: " + AdapterFolders.clip(e.getOriginalMessage()));
            }
            if (b == null || !b.isObject()) throw ApiError.badRequest("the body must be a JSON object {\"path\": ...} or empty");
            b.fieldNames().forEachRemaining(f -> {
                if (!f.equals("path")) throw ApiError.badRequest("unknown field '" + AdapterFolders.clip(f) + "' (fields: path)");
            });
            JsonNode p = b.get("path");
            if (p != null && !p.isNull()) {
                if (!p.isTextual()) throw ApiError.badRequest("'path' must be a string");
                relative = p.asText();
            }
        }
        if (model.adapters().stream().anyMatch(a -> a.name().equals(name))) {
            throw ApiError.conflict("adapter '" + name + "' is already loaded: delete it first");
        }
        String folder = relative;
        return describe(onInference(() -> model.add(name, folders, folder, config.maxAdapters())));
    }

    private JsonNode delete(String name) {
        if (!model.remove(name)) throw ApiError.notFound("no adapter named '" + name + "' is loaded");
        ObjectNode n = Exchanges.JSON.createObjectNode();
        n.put("deleted", name);
        return n;
    }

    private JsonNode predict(JsonNode body) {
        int features = (int) model.inFeatures();
        PredictRequest r = PredictRequest.parse(body, features, config.maxRows());
        float[] logits = onInference(() -> model.forward(r.pixels(), r.rows(), r.adapters(), r.rank()));
        int out = (int) model.outFeatures();
        ObjectNode n = Exchanges.JSON.createObjectNode();
        ArrayNode preds = n.putArray("predictions");
        for (int row = 0; row < r.rows(); row++) {
            int best = 0;
            for (int k = 1; k < out; k++) if (logits[row * out + k] > logits[row * out + best]) best = k;
            ObjectNode p = preds.addObject();
            p.put("class", best);
            if (labels != null) p.put("label", labels.get(best));
            p.put("adapter", r.adapters()[row]);
            ArrayNode l = p.putArray("logits");
            for (int k = 0; k < out; k++) l.add(logits[row * out + k]);
        }
        if (r.rank() != null) n.put("rank", r.rank());
        return n;
    }
}
