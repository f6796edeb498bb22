package dev.lora4j.examples.serve;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.examples.text.MeanPoolingClassifier;
import dev.lora4j.examples.text.MiniLmCheckpoint;
import dev.lora4j.hftools.BertTokenizer;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.nn.Linear;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code POST /classify} on an ephemeral loopback port over all-MiniLM-L6-v2 with six random
 * tenants (TenantFolders; tenants 2 and 5 DyLoRA) and a pool budget of about three adapters:
 * answers against an independent computation (the tenant's folder loaded by the plain PEFT
 * loader into a model of its own, its classifier included), mixed batches row by row, a DyLoRA
 * rank against the factors truncated by hand, refusals, eviction counters, and replacing a
 * tenant's folder while clients run.
 */
class ClassifyServiceTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final List<String> TEXTS = List.of("Python bindings for the GTK toolkit",
            "fast, safe and concurrent systems programming language compiler", "a tiny game of falling blocks",
            "network daemon for serving files over HTTP with TLS", "Perl module to parse command line options");

    @TempDir
    static Path root;

    static InferenceServer server;
    static BertModel referenceEncoder;
    static BertTokenizer tokenizer;
    static long adapterBytes;

    @BeforeAll
    static void start() throws IOException {
        Path minilm = MiniLmCheckpoint.ensureFolder(MiniLmCheckpoint.defaultDir());
        referenceEncoder = BertLoader.bertModel(minilm);
        TenantFolders.createRandom(referenceEncoder, root, 6, 15, 3);
        tokenizer = BertTokenizer.fromFile(MiniLmCheckpoint.tokenizer(minilm), 128);
        // tenant-000: 6 layers x (query, value) x (8x384 + 384x8) floats + an 11-label head
        adapterBytes = (6L * 2 * 2 * 8 * 384 + 11 * 384 + 11) * 4;
        TenantClassifier tenants = TenantClassifier.open(new TenantClassifier.Settings(root, minilm, 3 * adapterBytes, 128, 400));
        server = InferenceServer.start(ServiceConfig.defaults(root).withPort(0), null, null, tenants);
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
        if (referenceEncoder != null) referenceEncoder.close();
        if (tokenizer != null) tokenizer.close();
    }

    record Reply(int status, JsonNode body) {}

    static Reply call(String method, String path, String body) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.url() + path)).header("Content-Type", "application/json");
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), JSON.readTree(r.body()));
    }

    static Reply classify(Object body) throws IOException, InterruptedException {
        return call("POST", "/classify", JSON.writeValueAsString(body));
    }

    static double[] probabilities(JsonNode result) {
        double[] p = new double[result.get("probabilities").size()];
        for (int i = 0; i < p.length; i++) p[i] = result.get("probabilities").get(i).asDouble();
        return p;
    }

    /**
     * The tenant alone, independently: its folder loaded by {@link PeftAdapter#load} (classifier
     * written into the model) into a MeanPoolingClassifier over the reference encoder; for a rank
     * below r, B's columns from that rank on set to zero and the rest scaled by r/rank (scale
     * α/rank instead of α/r). Softmax of the logits of {@code text}.
     */
    static double[] reference(String tenant, String text, int rank) throws IOException {
        List<String> labels = labelsOf(tenant);
        MeanPoolingClassifier m = new MeanPoolingClassifier(referenceEncoder, new Linear(384, labels.size()));
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            PeftAdapter.load(m, root.resolve(tenant), "ref");
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                if (!l.hasAdapter("ref") || rank == 0) continue;
                Tensor b = l.loraB("ref");
                int r = (int) b.size(1);
                b.narrow(1, rank, r - rank).zero_();
                b.mul_((double) r / rank);
            }
            var batch = tokenizer.encode(List.of(text));
            double[] p = m.forward(batch.inputIds(), batch.attentionMask(), batch.tokenTypeIds()).softmax(1).toDoubleArray();
            Lora.deleteAdapter(m, "ref");
            return p;
        } finally {
            m.replaceChild("bert", new Linear(1, 1)); // the encoder stays for the next reference
            m.close();
        }
    }

    static List<String> labelsOf(String tenant) throws IOException {
        List<String> out = new ArrayList<>();
        JSON.readTree(root.resolve(tenant).resolve(PeftAdapter.CONFIG).toFile()).get(TenantFolders.LABELS).forEach(n -> out.add(n.asText()));
        return out;
    }

    @Test
    void aMixedBatchAnswersEachRowAsItsTenantAloneAndAsTheIndependentModel() throws Exception {
        List<String> tenants = List.of("tenant-000", "tenant-001", "tenant-003", "tenant-000", "tenant-004");
        Reply mixed = classify(java.util.Map.of("text", TEXTS, "tenant", tenants));
        assertEquals(200, mixed.status(), mixed.body().toString());
        for (int i = 0; i < TEXTS.size(); i++) {
            JsonNode row = mixed.body().get("results").get(i);
            assertEquals(tenants.get(i), row.get("tenant").asText());
            assertEquals(labelsOf(tenants.get(i)).size(), row.get("labels").size());
            assertEquals(8, row.get("rank").asInt());
            assertEquals("lora", row.get("kind").asText());
            Reply alone = classify(java.util.Map.of("text", TEXTS.get(i), "tenant", tenants.get(i)));
            assertEquals(200, alone.status(), alone.body().toString());
            assertArrayEquals(probabilities(alone.body().get("results").get(0)), probabilities(row), 1e-5, "row " + i + " alone");
            double[] ref = reference(tenants.get(i), TEXTS.get(i), 0);
            assertArrayEquals(ref, probabilities(row), 1e-5, "row " + i + " against the plain PEFT load");
            int best = 0;
            for (int k = 1; k < ref.length; k++) if (ref[k] > ref[best]) best = k;
            assertEquals(labelsOf(tenants.get(i)).get(best), row.get("label").asText());
        }
        // the objects form gives the same answers
        List<Object> inputs = new ArrayList<>();
        for (int i = 0; i < TEXTS.size(); i++) inputs.add(java.util.Map.of("text", TEXTS.get(i), "tenant", tenants.get(i)));
        Reply objects = classify(java.util.Map.of("inputs", inputs));
        assertEquals(200, objects.status(), objects.body().toString());
        for (int i = 0; i < TEXTS.size(); i++) {
            assertArrayEquals(probabilities(mixed.body().get("results").get(i)), probabilities(objects.body().get("results").get(i)), 1e-6);
        }
        // the tenants' adapters change the answers: two tenants with the same labels differ on the same text
        assertFalse(java.util.Arrays.equals(reference("tenant-000", TEXTS.get(0), 0), reference("tenant-003", TEXTS.get(0), 0)));
    }

    @Test
    void aDyLoraTenantAtRankRIsItsAdapterTruncatedToR() throws Exception {
        String t = "tenant-002"; // DyLoRA, r = 8
        List<String> texts = List.of(TEXTS.get(0), TEXTS.get(2), TEXTS.get(3));
        Reply r = classify(java.util.Map.of("text", texts, "tenant", List.of(t, t, "tenant-001"), "rank", java.util.Arrays.asList(3, 8, null)));
        assertEquals(200, r.status(), r.body().toString());
        JsonNode rows = r.body().get("results");
        assertEquals("dylora", rows.get(0).get("kind").asText());
        assertEquals(3, rows.get(0).get("rank").asInt());
        assertEquals(8, rows.get(1).get("rank").asInt());
        assertArrayEquals(reference(t, texts.get(0), 3), probabilities(rows.get(0)), 1e-5, "rank 3");
        assertArrayEquals(reference(t, texts.get(1), 0), probabilities(rows.get(1)), 1e-5, "rank 8 = r_max: the adapter as saved");
        assertArrayEquals(reference("tenant-001", texts.get(2), 0), probabilities(rows.get(2)), 1e-5);
        for (int rank = 1; rank <= 8; rank += 3) {
            Reply one = classify(java.util.Map.of("text", texts.get(0), "tenant", t, "rank", rank));
            assertArrayEquals(reference(t, texts.get(0), rank), probabilities(one.body().get("results").get(0)), 1e-5, "rank " + rank);
        }
    }

    @Test
    void badRequestsAreRefusedWithAMessage() throws Exception {
        assertRefused(400, "malformed JSON", call("POST", "/classify", "{\"text\": [\"a\""));
        assertRefused(400, "'tenant' is required", classify(java.util.Map.of("text", "a")));
        assertRefused(400, "unknown field 'texts'", classify(java.util.Map.of("texts", "a", "tenant", "tenant-000")));
        assertRefused(400, "one name per text", classify(java.util.Map.of("text", List.of("a", "b"), "tenant", List.of("tenant-000"))));
        assertRefused(400, "adapter names are", classify(java.util.Map.of("text", "a", "tenant", "../tenant-000")));
        assertRefused(404, "no tenant 'nobody'", classify(java.util.Map.of("text", "a", "tenant", "nobody")));
        assertRefused(413, "has 401 characters; the limit is 400", classify(java.util.Map.of("text", "x".repeat(401), "tenant", "tenant-000")));
        assertRefused(413, "at most 64 rows", classify(java.util.Map.of("text", java.util.Collections.nCopies(65, "a"), "tenant", "tenant-000")));
        assertRefused(400, "'rank' must be in 1..8 for tenant 'tenant-002'", classify(java.util.Map.of("text", "a", "tenant", "tenant-002", "rank", 9)));
        assertRefused(400, "'rank' must be >= 1", classify(java.util.Map.of("text", "a", "tenant", "tenant-002", "rank", 0)));
        assertRefused(400, "'rank' applies to DyLoRA tenants only", classify(java.util.Map.of("text", "a", "tenant", "tenant-000", "rank", 2)));
        assertRefused(405, "use POST /classify", call("GET", "/classify", null));
        assertRefused(404, "serves no MLP", call("POST", "/predict", "{}"));
        assertRefused(404, "no tenant 'nobody'", call("POST", "/tenants/nobody/reload", null));
        // tenant-000 as if initialised by OLoRA: it would rewrite the shared encoder's weights
        var cfg = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(root.resolve("tenant-000").resolve(PeftAdapter.CONFIG).toFile());
        cfg.put("init_lora_weights", "olora");
        try (var w = dev.lora4j.io.Safetensors.read(root.resolve("tenant-000").resolve(PeftAdapter.WEIGHTS))) {
            PeftAdapter.write(root.resolve("broken"), JSON.writeValueAsBytes(cfg), w.tensors());
        }
        assertRefused(422, "rewrites the base weights", classify(java.util.Map.of("text", "a", "tenant", "broken")));
        assertEquals(200, classify(java.util.Map.of("text", "still serving", "tenant", "tenant-000")).status());
    }

    /**
     * A tenant is LoRA factors plus its own classifier head, read from inside the tenants root:
     * other modules_to_save (which the service would silently ignore), LoRA factors under a
     * modules_to_save name (which used to become a tenant that wraps nothing and can never be
     * served or deleted), and files that are symbolic links (possibly out of the root, whose
     * content an error must not echo) are refused; tenant-000 keeps serving.
     */
    @Test
    void tenantsThatAreNotFactorsAndAHeadOrThatHoldLinksAreRefused(@TempDir Path outside) throws Exception {
        Path t0 = root.resolve("tenant-000");
        var cfg = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(t0.resolve(PeftAdapter.CONFIG).toFile());
        try (TensorScope s = TensorScope.open(); var w = dev.lora4j.io.Safetensors.read(t0.resolve(PeftAdapter.WEIGHTS))) {
            var extra = cfg.deepCopy();
            extra.putArray("modules_to_save").add("classifier").add("LayerNorm");
            var tensors = new java.util.LinkedHashMap<>(w.tensors());
            tensors.put("base_model.model.bert.embeddings.LayerNorm.weight", Tensor.zeros(384));
            PeftAdapter.write(root.resolve("extra-module"), JSON.writeValueAsBytes(extra), tensors);
            var self = cfg.deepCopy();
            self.putArray("modules_to_save").add("classifier").add("self");
            PeftAdapter.write(root.resolve("self-saved"), JSON.writeValueAsBytes(self), w.tensors());
        }
        assertRefused(422, "bert.embeddings.LayerNorm.weight", classify(java.util.Map.of("text", "a", "tenant", "extra-module")));
        assertFalse(call("GET", "/tenants", null).body().get("resident").toString().contains("extra-module"),
                "a refused tenant leaves the pool");
        assertRefused(422, "LoRA factor", classify(java.util.Map.of("text", "a", "tenant", "self-saved")));
        assertRefused(422, "LoRA factor", call("POST", "/tenants/self-saved/reload", null));

        String secret = "sk_live_SUPERSECRET_4711";
        Files.writeString(outside.resolve("secret.json"), secret + "\n");
        Path linkedConfig = Files.createDirectories(root.resolve("linked-config"));
        Files.createSymbolicLink(linkedConfig.resolve(PeftAdapter.CONFIG), outside.resolve("secret.json"));
        Files.copy(t0.resolve(PeftAdapter.WEIGHTS), linkedConfig.resolve(PeftAdapter.WEIGHTS));
        Path linkedWeights = Files.createDirectories(root.resolve("linked-weights"));
        Files.copy(t0.resolve(PeftAdapter.CONFIG), linkedWeights.resolve(PeftAdapter.CONFIG));
        Files.createSymbolicLink(linkedWeights.resolve(PeftAdapter.WEIGHTS), t0.resolve(PeftAdapter.WEIGHTS));
        for (String t : List.of("linked-config", "linked-weights")) {
            Reply r = classify(java.util.Map.of("text", "a", "tenant", t));
            assertRefused(422, "symbolic link", r);
            assertFalse(r.body().toString().contains(secret), r.body().toString());
        }
        assertEquals(200, classify(java.util.Map.of("text", "still serving", "tenant", "tenant-000")).status());
    }

    /**
     * A rank cut is loaded from the folder as it is now; when the folder was replaced after the
     * tenant's full version was leased (checked: DyLoRA, r_max), the cut is another version: the
     * request is refused (409) instead of serving a LoRA tenant at a cut rank with another tenant's
     * labels (it used to answer 200 with kind "lora").
     */
    @Test
    void aCutOfAFolderReplacedSinceTheCheckedVersionIsRefused() throws Exception {
        Path swap = root.resolve("tenant-swap");
        Files.createDirectories(swap);
        for (String f : new String[] {PeftAdapter.CONFIG, PeftAdapter.WEIGHTS}) {
            Files.copy(root.resolve("tenant-002").resolve(f), swap.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        assertEquals(200, classify(java.util.Map.of("text", "a", "tenant", "tenant-swap")).status());
        swap(root.resolve("tenant-000"), swap); // a LoRA tenant with other labels, not reloaded
        assertRefused(409, "changed on disk", classify(java.util.Map.of("text", "a", "tenant", "tenant-swap", "rank", 2)));
        assertEquals(200, call("POST", "/tenants/tenant-swap/reload", null).status());
        assertRefused(400, "applies to DyLoRA tenants only", classify(java.util.Map.of("text", "a", "tenant", "tenant-swap", "rank", 2)));
    }

    static void assertRefused(int status, String fragment, Reply r) {
        assertEquals(status, r.status(), r.body().toString());
        assertEquals(status, r.body().get("status").asInt());
        assertTrue(r.body().get("error").asText().contains(fragment), r.body().get("error").asText());
    }

    @Test
    void thePoolEvictsUnderItsBudgetAndCountsHitsAndMisses() throws Exception {
        for (JsonNode key : call("GET", "/tenants", null).body().get("resident")) {
            call("DELETE", "/tenants/" + key.asText().replaceAll("@.*", ""), null); // a clean pool, whatever ran before
        }
        JsonNode before = call("GET", "/health", null).body().get("pool");
        assertEquals(3 * adapterBytes, before.get("budget_bytes").asLong());
        for (String t : List.of("tenant-000", "tenant-003", "tenant-004", "tenant-001", "tenant-001", "tenant-000")) {
            assertEquals(200, classify(java.util.Map.of("text", "a text", "tenant", t)).status());
        }
        JsonNode after = call("GET", "/health", null).body().get("pool");
        // 000, 003, 004 load; 001 loads and pushes the oldest out (000, least recently used), 001 hits, 000 loads again
        assertEquals(5, after.get("misses").asLong() - before.get("misses").asLong(), after.toString());
        assertEquals(1, after.get("hits").asLong() - before.get("hits").asLong(), after.toString());
        assertEquals(5, after.get("loads").asLong() - before.get("loads").asLong(), after.toString());
        assertTrue(after.get("evictions").asLong() - before.get("evictions").asLong() >= 2, after.toString());
        assertTrue(after.get("resident_bytes").asLong() <= after.get("budget_bytes").asLong(), after.toString());
        assertEquals(0, after.get("pinned").asInt());
        JsonNode resident = call("GET", "/tenants", null).body().get("resident");
        assertEquals("tenant-000", resident.get(resident.size() - 1).asText(), resident.toString());
    }

    @Test
    void replacingATenantWhileClientsRunGivesEveryRequestOneWholeVersion() throws Exception {
        Path hot = root.resolve("hot");
        Path a = root.resolve("tenant-000");
        Path b = root.resolve("tenant-003"); // same labels, other weights
        swap(a, hot);
        List<String> texts = List.of(TEXTS.get(0), TEXTS.get(1));
        double[][] va = {reference("tenant-000", texts.get(0), 0), reference("tenant-000", texts.get(1), 0)};
        double[][] vb = {reference("tenant-003", texts.get(0), 0), reference("tenant-003", texts.get(1), 0)};
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService ex = Executors.newFixedThreadPool(5);
        try {
            List<Future<int[]>> clients = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                clients.add(ex.submit(() -> {
                    int[] seen = new int[2];
                    while (!stop.get()) {
                        Reply r = classify(java.util.Map.of("text", texts, "tenant", "hot"));
                        assertEquals(200, r.status(), r.body().toString());
                        double[] p0 = probabilities(r.body().get("results").get(0));
                        double[] p1 = probabilities(r.body().get("results").get(1));
                        boolean isA = close(p0, va[0]) && close(p1, va[1]);
                        boolean isB = close(p0, vb[0]) && close(p1, vb[1]);
                        assertTrue(isA || isB, "one whole version per request");
                        seen[isA ? 0 : 1]++;
                    }
                    return seen;
                }));
            }
            Future<Integer> churn = ex.submit(() -> {
                int n = 0;
                for (long end = System.nanoTime() + 4_000_000_000L; System.nanoTime() < end; n++) {
                    swap(n % 2 == 0 ? b : a, hot);
                    Reply r = n % 3 == 2 ? call("DELETE", "/tenants/hot", null) : call("POST", "/tenants/hot/reload", null);
                    assertEquals(200, r.status(), r.body().toString());
                    Thread.sleep(50);
                }
                return n;
            });
            int swaps = churn.get();
            stop.set(true);
            int[] total = new int[2];
            for (Future<int[]> f : clients) {
                int[] s = f.get();
                total[0] += s[0];
                total[1] += s[1];
            }
            assertTrue(swaps >= 4, "swaps " + swaps);
            assertTrue(total[0] > 0 && total[1] > 0, "both versions served: " + total[0] + " / " + total[1]);
        } finally {
            stop.set(true);
            ex.shutdownNow();
        }
        JsonNode pool = call("GET", "/health", null).body().get("pool");
        assertEquals(0, pool.get("pinned").asInt(), pool.toString());
    }

    static boolean close(double[] x, double[] y) {
        if (x.length != y.length) return false;
        for (int i = 0; i < x.length; i++) if (Math.abs(x[i] - y[i]) > 1e-5) return false;
        return true;
    }

    /** Replaces {@code to}'s files by {@code from}'s, each renamed into place (weights first, as PeftAdapter writes). */
    static void swap(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        for (String f : new String[] {PeftAdapter.WEIGHTS, PeftAdapter.CONFIG}) {
            Path tmp = to.resolve("." + f + ".tmp");
            Files.copy(from.resolve(f), tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, to.resolve(f), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
