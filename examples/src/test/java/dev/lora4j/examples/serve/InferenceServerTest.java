package dev.lora4j.examples.serve;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraLayer;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service on an ephemeral loopback port with a small model (784 → 16 → 10): every
 * endpoint, every kind of refusal, answers equal to the library's own computation, 8
 * concurrent clients bit-identical to serial ones, and a shutdown that frees the model.
 */
class InferenceServerTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @TempDir
    static Path root;

    static InferenceServer server;
    static Sequential reference;
    static long reclaimedBefore;
    static Path outside;

    static Sequential model() {
        Torch.manualSeed(5);
        return new Sequential(new Linear(784, 16), Activation.relu(), new Linear(16, 10));
    }

    /** An adapter folder with random (non-zero) factors for a model of the test's shape. */
    static void loraFolder(Path dir, LoraConfig config, long seed) throws IOException {
        try (Sequential m = model(); var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Lora.wrap(m, config);
            Torch.manualSeed(seed);
            for (LoraLayer l : Lora.loraLayers(m).values()) l.loraB().copy_(Tensor.randn(l.loraB().shape()).mul(0.5));
            PeftAdapter.save(m, config, dir);
        }
    }

    @BeforeAll
    static void start() throws IOException {
        reclaimedBefore = Torch.reclaimedTensorCount();
        loraFolder(root.resolve("a1"), LoraConfig.of(2, 4), 1);
        loraFolder(root.resolve("nested/a2"), LoraConfig.of(4, 8).withTargetModules("0"), 2);
        loraFolder(root.resolve("a3"), LoraConfig.of(1, 1), 3);
        try (Sequential m = model(); var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            DyLora.wrap(m, LoraConfig.of(4, 4));
            Torch.manualSeed(4);
            for (var mod : m.namedModules().values()) {
                if (mod instanceof DyLoraLayer d) d.loraB().copy_(Tensor.randn(d.loraB().shape()).mul(0.5));
            }
            DyLoraFolders.save(m, root.resolve("dy"));
        }
        Files.createDirectories(root.resolve("broken"));
        Files.writeString(root.resolve("broken/adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 2");
        Files.createDirectories(root.resolve("wrong-shape"));
        try (Sequential other = new Sequential(new Linear(784, 32), Activation.relu(), new Linear(32, 10))) {
            Lora.wrap(other, LoraConfig.of(2, 2));
            PeftAdapter.save(other, LoraConfig.of(2, 2), root.resolve("wrong-shape"));
        }
        outside = Files.createTempDirectory("outside");
        Files.createSymbolicLink(root.resolve("escape"), outside);

        ServiceConfig config = new ServiceConfig("127.0.0.1", 0, root, 64 * 1024, 8, 4, 4, 1, 5, 10);
        server = InferenceServer.start(config, model(), List.of("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"));
        reference = model();
        reference.eval();
    }

    @AfterAll
    static void stop() throws IOException {
        if (server != null) server.close();
        if (reference != null) reference.close();
        if (outside != null) Files.deleteIfExists(outside);
    }

    // ------------------------------------------------------------------ helpers

    record Reply(int status, JsonNode body, String raw) {}

    static Reply call(String method, String path, String body) throws Exception {
        return call(method, path, body, "application/json");
    }

    static Reply call(String method, String path, String body, String type) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.url() + path));
        if (type != null) b.header("Content-Type", type);
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        JsonNode json = r.body().isEmpty() ? null : JSON.readTree(r.body());
        return new Reply(r.statusCode(), json, r.body());
    }

    static void expect(int status, Reply r) {
        assertEquals(status, r.status(), r.raw());
        if (status >= 400) {
            assertEquals(status, r.body().get("status").asInt(), r.raw());
            assertFalse(r.body().get("error").asText().isBlank());
        }
    }

    static float[] image(long seed) {
        Random rnd = new Random(seed);
        float[] x = new float[784];
        for (int i = 0; i < x.length; i++) x[i] = rnd.nextInt(256) / 255f;
        return x;
    }

    static String pixels(float[] x) throws IOException {
        return JSON.writeValueAsString(x);
    }

    static float[] logits(JsonNode prediction) {
        JsonNode l = prediction.get("logits");
        float[] out = new float[l.size()];
        for (int i = 0; i < out.length; i++) out[i] = l.get(i).floatValue();
        return out;
    }

    static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) assertEquals(expected[i], actual[i], 1e-4, what + " [" + i + "]");
    }

    /** The library's own answer on a same-weights model with the folder loaded. */
    static float[] expected(String folder, float[] x, Integer rank) throws IOException {
        try (Sequential m = model(); var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            Tensor in = Tensor.of(x, 1, 784);
            if (folder == null) return m.forward(in).toFloatArray();
            if (rank == null) {
                PeftAdapter.load(m, root.resolve(folder));
                m.eval();
                return m.forward(in).toFloatArray();
            }
            // A DyLoRA folder at a rank: DyLoRA layers with the folder's factors.
            try (Sequential plain = model()) {
                PeftAdapter.load(plain, root.resolve(folder));
                DyLora.wrap(m, LoraConfig.of(4, 4));
                var dys = m.namedModules().values().stream().filter(d -> d instanceof DyLoraLayer).map(d -> (DyLoraLayer) d).toList();
                var loras = Lora.loraLayers(plain).values().stream().toList();
                for (int i = 0; i < dys.size(); i++) {
                    dys.get(i).loraA().copy_(loras.get(i).loraA());
                    dys.get(i).loraB().copy_(loras.get(i).loraB());
                }
                m.eval();
                return DyLora.forward(m, in, rank).toFloatArray();
            }
        }
    }

    // ------------------------------------------------------------------ the tests (one flow, in order)

    @Test
    void everyEndpointAndErrorThenConcurrentClientsThenShutdown() throws Exception {
        // health and an empty adapter list
        Reply h = call("GET", "/health", null, null);
        expect(200, h);
        assertEquals("ok", h.body().get("status").asText());
        assertEquals(784, h.body().get("model").get("in_features").asInt());
        expect(200, call("GET", "/adapters", null, null));
        assertEquals(0, call("GET", "/adapters", null, null).body().get("adapters").size());

        // loading adapters: by name, by a nested path, a DyLoRA one
        Reply a1 = call("POST", "/adapters/a1", null, null);
        expect(201, a1);
        assertEquals("lora", a1.body().get("kind").asText());
        assertEquals(2, a1.body().get("rank").asInt());
        expect(201, call("POST", "/adapters/a2", "{\"path\": \"nested/a2\"}"));
        Reply dy = call("POST", "/adapters/dy", "");
        expect(201, dy);
        assertEquals("dylora", dy.body().get("kind").asText());
        assertEquals(4, dy.body().get("rank").asInt());
        JsonNode list = call("GET", "/adapters", null, null).body().get("adapters");
        assertEquals(3, list.size());
        assertEquals("[\"0\"]", list.get(1).get("layers").toString());

        // loading refusals
        expect(409, call("POST", "/adapters/a1", null, null));
        expect(404, call("POST", "/adapters/nothing-here", null, null));
        expect(400, call("POST", "/adapters/x", "{\"path\": \"../outside\"}"));
        expect(400, call("POST", "/adapters/x", "{\"path\": \"nested/../../x\"}"));
        expect(400, call("POST", "/adapters/x", "{\"path\": \"/etc\"}"));
        expect(400, call("POST", "/adapters/x", "{\"path\": \"escape\"}"));
        expect(400, call("POST", "/adapters/x", "{\"path\": 5}"));
        expect(400, call("POST", "/adapters/x", "{\"folder\": \"a1\"}"));
        expect(400, call("POST", "/adapters/x", "[1, 2]"));
        expect(400, call("POST", "/adapters/x", "{\"path\": "));
        expect(415, call("POST", "/adapters/x", "{\"path\": \"a1\"}", "text/plain"));
        expect(400, call("POST", "/adapters/..", null, null));
        expect(400, call("POST", "/adapters/%2e%2e%2fetc", null, null));
        expect(400, call("POST", "/adapters/" + "n".repeat(65), null, null));
        expect(400, call("POST", "/adapters/__base__", null, null));
        expect(422, call("POST", "/adapters/broken", null, null));
        expect(422, call("POST", "/adapters/wrong-shape", null, null));
        expect(201, call("POST", "/adapters/a3", null, null));
        expect(409, call("POST", "/adapters/a4", "{\"path\": \"a1\"}")); // the limit is 4 adapters
        expect(200, call("DELETE", "/adapters/a3", null, null));
        assertEquals(3, call("GET", "/health", null, null).body().get("adapters").asInt());

        // predictions agree with the library
        float[] x = image(1);
        Reply base = call("POST", "/predict", "{\"pixels\": " + pixels(x) + "}");
        expect(200, base);
        assertClose(expected(null, x, null), logits(base.body().get("predictions").get(0)), "base");
        JsonNode p0 = base.body().get("predictions").get(0);
        assertEquals("c" + p0.get("class").asInt(), p0.get("label").asText());
        Reply r1 = call("POST", "/predict", "{\"pixels\": " + pixels(x) + ", \"adapter\": \"a1\"}");
        expect(200, r1);
        assertClose(expected("a1", x, null), logits(r1.body().get("predictions").get(0)), "a1");
        Reply r2 = call("POST", "/predict", "{\"pixels\": " + pixels(x) + ", \"adapter\": \"a2\"}");
        assertClose(expected("nested/a2", x, null), logits(r2.body().get("predictions").get(0)), "a2");
        for (int rank = 1; rank <= 4; rank++) {
            Reply rd = call("POST", "/predict", "{\"pixels\": " + pixels(x) + ", \"adapter\": \"dy\", \"rank\": " + rank + "}");
            expect(200, rd);
            assertClose(expected("dy", x, rank), logits(rd.body().get("predictions").get(0)), "dy rank " + rank);
        }
        Reply dyFull = call("POST", "/predict", "{\"pixels\": " + pixels(x) + ", \"adapter\": \"dy\"}");
        assertClose(expected("dy", x, 4), logits(dyFull.body().get("predictions").get(0)), "dy without rank = r_max");
        // a mixed batch: one adapter per row, DyLoRA rows included, answers in row order
        float[] y = image(2);
        String batch = "{\"pixels\": [" + pixels(x) + ", " + pixels(y) + ", " + pixels(x) + ", " + pixels(y) + "],"
                + " \"adapter\": [\"a1\", \"__base__\", \"dy\", \"a2\"], \"rank\": 2}";
        Reply rejected = call("POST", "/predict", batch);
        expect(422, rejected); // a rank for a LoRA adapter's rows
        Reply mixed = call("POST", "/predict", batch.replace(", \"rank\": 2", ""));
        expect(200, mixed);
        JsonNode preds = mixed.body().get("predictions");
        assertClose(expected("a1", x, null), logits(preds.get(0)), "mixed row 0");
        assertClose(expected(null, y, null), logits(preds.get(1)), "mixed row 1");
        assertClose(expected("dy", x, 4), logits(preds.get(2)), "mixed row 2");
        assertClose(expected("nested/a2", y, null), logits(preds.get(3)), "mixed row 3");
        Reply dyMixed = call("POST", "/predict", "{\"pixels\": [" + pixels(x) + ", " + pixels(y) + "], \"adapter\": [\"dy\", \"__base__\"], \"rank\": 1}");
        expect(200, dyMixed);
        assertClose(expected("dy", x, 1), logits(dyMixed.body().get("predictions").get(0)), "dy rank 1 in a batch");

        // predict refusals: every field
        String px = pixels(x);
        expect(400, call("POST", "/predict", "{}"));
        expect(400, call("POST", "/predict", "{\"pixels\": null}"));
        expect(400, call("POST", "/predict", "{\"pixels\": []}"));
        expect(400, call("POST", "/predict", "{\"pixels\": [1, 2, 3]}"));
        expect(400, call("POST", "/predict", "{\"pixels\": \"abc\"}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px.replaceFirst("[0-9.]+", "\"a\"") + "}"));
        expect(400, call("POST", "/predict", "{\"pixels\": [" + px + ", 1]}"));
        expect(400, call("POST", "/predict", "{\"pixels\": [" + px + ", [1, 2]]}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px.replaceFirst("[0-9.]+", "2.5") + "}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px.replaceFirst("[0-9.]+", "-1") + "}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px.replaceFirst("[0-9.]+", "1e400") + "}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px.replaceFirst("[0-9.]+", "NaN") + "}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"extra\": 1}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"pixels\": " + px + "}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + "} {}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px));
        expect(400, call("POST", "/predict", ""));
        expect(400, call("POST", "/predict", "[1]"));
        expect(404, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"nope\"}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"../a1\"}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": 7}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": [\"a1\", \"a1\"]}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": [1]}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"a1\", \"rank\": 1}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"dy\", \"rank\": 5}"));
        expect(422, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"dy\", \"rank\": 0}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"dy\", \"rank\": 1.5}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"dy\", \"rank\": \"2\"}"));
        expect(400, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"dy\", \"rank\": 99999999999}"));
        expect(413, call("POST", "/predict", "{\"pixels\": [" + (px + ",").repeat(8) + px + "]}")); // 9 rows > 8 (and > 64 KiB)
        expect(413, call("POST", "/predict", "{\"pixels\": [" + "0,".repeat(40_000) + "0]}"));
        expect(415, call("POST", "/predict", "{\"pixels\": " + px + "}", "text/plain"));
        expect(415, call("POST", "/predict", "{\"pixels\": " + px + "}", null));
        expect(405, call("GET", "/predict", null, null));
        expect(405, call("PUT", "/adapters/a1", "{}"));
        expect(405, call("DELETE", "/health", null, null));
        expect(404, call("GET", "/nothing", null, null));
        expect(400, call("GET", "/adapters/a1/more", null, null)); // not an adapter name

        // 8 concurrent clients, bit-identical (the same bytes) to serial answers
        concurrentClientsAgreeWithSerial();

        // unloading
        expect(200, call("DELETE", "/adapters/a2", null, null));
        expect(404, call("DELETE", "/adapters/a2", null, null));
        expect(404, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"a2\"}"));
        expect(200, call("DELETE", "/adapters/dy", null, null));
        expect(400, call("DELETE", "/adapters/..", null, null));
        assertEquals(1, call("GET", "/adapters", null, null).body().get("adapters").size());
        expect(200, call("POST", "/predict", "{\"pixels\": " + px + ", \"adapter\": \"a1\"}"));

        // graceful shutdown frees the model; the port stops answering
        server.close();
        assertTrue(server.isClosed());
        assertThrows(IOException.class, () -> call("GET", "/health", null, null));
        server.close(); // idempotent
        assertEquals(reclaimedBefore, Torch.reclaimedTensorCount(), "the Cleaner had to free tensors");
    }

    private void concurrentClientsAgreeWithSerial() throws Exception {
        String[] adapters = {"__base__", "a1", "a2", "dy"};
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            String a = adapters[i % adapters.length];
            String rank = a.equals("dy") ? ", \"rank\": " + (1 + i % 4) : "";
            if (i % 5 == 0) {
                bodies.add("{\"pixels\": [" + pixels(image(100 + i)) + ", " + pixels(image(200 + i)) + "], \"adapter\": [\"" + a
                        + "\", \"a1\"]}");
            } else {
                bodies.add("{\"pixels\": " + pixels(image(100 + i)) + ", \"adapter\": \"" + a + "\"" + rank + "}");
            }
        }
        List<String> serial = new ArrayList<>();
        for (String b : bodies) {
            Reply r = call("POST", "/predict", b);
            expect(200, r);
            serial.add(r.raw());
        }
        int threads = 8;
        int rounds = 4;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Integer>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int offset = t * 7;
                done.add(pool.submit(() -> {
                    int same = 0;
                    for (int k = 0; k < rounds * bodies.size(); k++) {
                        int i = (offset + k) % bodies.size();
                        Reply r = call("POST", "/predict", bodies.get(i));
                        if (r.status() == 200 && r.raw().equals(serial.get(i))) same++;
                    }
                    return same;
                }));
            }
            for (Future<Integer> f : done) assertEquals(rounds * bodies.size(), f.get(), "answers that differ from the serial ones");
        } finally {
            pool.shutdown();
        }
    }
}
