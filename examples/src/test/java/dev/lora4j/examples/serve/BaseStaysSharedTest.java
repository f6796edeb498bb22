package dev.lora4j.examples.serve;

import static dev.lora4j.examples.serve.InferenceServerTest.image;
import static dev.lora4j.examples.serve.InferenceServerTest.loraFolder;
import static dev.lora4j.examples.serve.InferenceServerTest.model;
import static dev.lora4j.examples.serve.InferenceServerTest.pixels;
import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Sequential;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every adapter of the service shares one base: an adapter folder that would change the base
 * on load ({@code modules_to_save}, a PiSSA or OLoRA init, for LoRA and DyLoRA folders alike)
 * is refused with 422, and the base's answers stay bit-identical to the untouched model's,
 * whatever was posted, refused or deleted.
 */
class BaseStaysSharedTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @TempDir
    Path root;

    /** A LoRA folder on the first layer with {@code extra} fields in its config and {@code tensors} added to its file. */
    private void folder(String name, String extra, Map<String, Tensor> tensors) throws Exception {
        Path dir = root.resolve(name);
        loraFolder(dir, LoraConfig.of(2, 4).withTargetModules("0"), 7);
        ObjectNode cfg = (ObjectNode) JSON.readTree(dir.resolve(PeftAdapter.CONFIG).toFile());
        JSON.readTree(extra).fields().forEachRemaining(e -> cfg.set(e.getKey(), e.getValue()));
        Files.write(dir.resolve(PeftAdapter.CONFIG), JSON.writeValueAsBytes(cfg));
        // Rewritten without the pairing digest lora4j's save puts into the weights (the config changed).
        Map<String, Tensor> all;
        try (var w = Safetensors.read(dir.resolve(PeftAdapter.WEIGHTS))) {
            all = new LinkedHashMap<>(w.tensors());
            all.putAll(tensors);
            Safetensors.write(dir.resolve(PeftAdapter.WEIGHTS), all);
        }
    }

    private static JsonNode call(InferenceServer server, String method, String path, String body, int status) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.url() + path)).header("Content-Type", "application/json");
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(status, r.statusCode(), method + " " + path + ": " + r.body());
        return JSON.readTree(r.body());
    }

    private static float[] baseLogits(InferenceServer server, float[] x) throws Exception {
        JsonNode logits = call(server, "POST", "/predict", "{\"pixels\": " + pixels(x) + ", \"adapter\": \"__base__\"}", 200)
                .get("predictions").get(0).get("logits");
        float[] out = new float[logits.size()];
        for (int i = 0; i < out.length; i++) out[i] = (float) logits.get(i).asDouble();
        return out;
    }

    @Test
    void foldersThatWouldChangeTheSharedBaseAreRefusedAndTheBaseStaysAsItWas() throws Exception {
        try (TensorScope s = TensorScope.open()) {
            Map<String, Tensor> head = Map.of("base_model.model.2.weight", Tensor.zeros(10, 16), "base_model.model.2.bias", Tensor.full(7.0, 10));
            folder("head", "{\"modules_to_save\": [\"2\"]}", head);
            folder("pissa", "{\"init_lora_weights\": \"pissa\"}", Map.of());
            folder("olora", "{\"init_lora_weights\": \"olora\"}", Map.of());
            folder("dy-head", "{\"modules_to_save\": [\"2\"], \"lora4j_dylora\": true}", head);
            folder("dy-olora", "{\"init_lora_weights\": \"olora\", \"lora4j_dylora\": true}", Map.of());
            folder("plain", "{}", Map.of());
        }
        float[] x = image(11);
        float[] expected;
        try (Sequential reference = model(); TensorScope s = TensorScope.open()) {
            reference.eval();
            expected = reference.forward(Tensor.of(x).reshape(1, 784)).toFloatArray();
        }
        ServiceConfig config = new ServiceConfig("127.0.0.1", 0, root, 64 * 1024, 8, 8, 2, 1, 5, 10);
        try (InferenceServer server = InferenceServer.start(config, model(), null)) {
            assertArrayEquals(expected, baseLogits(server, x));
            for (String name : List.of("head", "pissa", "olora", "dy-head", "dy-olora")) {
                String error = call(server, "POST", "/adapters/" + name, null, 422).get("error").asText();
                assertTrue(error.contains(name.endsWith("head") ? "modules_to_save" : "init_lora_weights"), error);
                assertArrayEquals(expected, baseLogits(server, x), name + " changed the base");
                call(server, "DELETE", "/adapters/" + name, null, 404);
            }
            call(server, "POST", "/adapters/plain", null, 201);
            call(server, "DELETE", "/adapters/plain", null, 200);
            assertArrayEquals(expected, baseLogits(server, x));
        }
    }
}
