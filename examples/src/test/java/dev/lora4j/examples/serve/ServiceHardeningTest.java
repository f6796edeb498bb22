package dev.lora4j.examples.serve;

import static dev.lora4j.examples.serve.InferenceServerTest.image;
import static dev.lora4j.examples.serve.InferenceServerTest.loraFolder;
import static dev.lora4j.examples.serve.InferenceServerTest.model;
import static dev.lora4j.examples.serve.InferenceServerTest.pixels;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.LoraConfig;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service against hostile input: links inside adapter folders, files whose content must
 * not be echoed, names the library would refuse, and a client that sends its body slowly.
 */
class ServiceHardeningTest {

    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final String SECRET = "TOPSECRET-4711";

    @TempDir
    static Path root;

    @TempDir
    static Path outside;

    static InferenceServer server;

    @BeforeAll
    static void start() throws Exception {
        loraFolder(root.resolve("good"), LoraConfig.of(2, 4), 1);
        loraFolder(outside.resolve("valid"), LoraConfig.of(2, 4), 2);
        Files.writeString(outside.resolve("secret.txt"), SECRET + " is not JSON\n");
        // A folder inside the root whose weights file links to a valid adapter file outside it.
        Path linkedWeights = Files.createDirectories(root.resolve("linked-weights"));
        Files.copy(root.resolve("good").resolve(PeftAdapter.CONFIG), linkedWeights.resolve(PeftAdapter.CONFIG));
        Files.createSymbolicLink(linkedWeights.resolve(PeftAdapter.WEIGHTS), outside.resolve("valid").resolve(PeftAdapter.WEIGHTS));
        // One whose config links to a secret file outside.
        Path linkedConfig = Files.createDirectories(root.resolve("linked-config"));
        Files.createSymbolicLink(linkedConfig.resolve(PeftAdapter.CONFIG), outside.resolve("secret.txt"));
        Files.copy(root.resolve("good").resolve(PeftAdapter.WEIGHTS), linkedConfig.resolve(PeftAdapter.WEIGHTS));
        // One inside the root whose config is not JSON: refused without quoting it.
        Path garbage = Files.createDirectories(root.resolve("garbage"));
        Files.writeString(garbage.resolve(PeftAdapter.CONFIG), SECRET + " garbage");
        Files.copy(root.resolve("good").resolve(PeftAdapter.WEIGHTS), garbage.resolve(PeftAdapter.WEIGHTS));
        // One whose weights header is not JSON.
        Path badHeader = Files.createDirectories(root.resolve("bad-header"));
        Files.copy(root.resolve("good").resolve(PeftAdapter.CONFIG), badHeader.resolve(PeftAdapter.CONFIG));
        byte[] head = (SECRET + " xx").getBytes(StandardCharsets.US_ASCII);
        byte[] file = new byte[8 + head.length];
        java.nio.ByteBuffer.wrap(file).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(head.length).put(head);
        Files.write(badHeader.resolve(PeftAdapter.WEIGHTS), file);

        // One inference worker, 2 s to send a body, 1 s to drain at shutdown.
        ServiceConfig config = new ServiceConfig("127.0.0.1", 0, root, 1 << 20, 64, 8, 1, 1, 1, 2);
        server = InferenceServer.start(config, model(), List.of("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"));
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
    }

    static HttpResponse<String> post(String path, String body) throws Exception {
        HttpRequest r = HttpRequest.newBuilder(URI.create(server.url() + path)).timeout(Duration.ofSeconds(20))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
        return HTTP.send(r, HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void aLinkInsideAnAdapterFolderIsNotFollowedAndNoFileContentIsEchoed() throws Exception {
        HttpResponse<String> weights = post("/adapters/w", "");
        assertEquals(404, weights.statusCode(), "no folder named w: " + weights.body());
        weights = post("/adapters/w", "{\"path\": \"linked-weights\"}");
        assertEquals(422, weights.statusCode(), weights.body());
        assertTrue(weights.body().contains("symbolic link"), weights.body());
        HttpResponse<String> config = post("/adapters/c", "{\"path\": \"linked-config\"}");
        assertEquals(422, config.statusCode(), config.body());
        assertFalse(config.body().contains(SECRET), config.body());
        HttpResponse<String> garbage = post("/adapters/g", "{\"path\": \"garbage\"}");
        assertEquals(422, garbage.statusCode(), garbage.body());
        assertFalse(garbage.body().contains(SECRET), garbage.body());
        HttpResponse<String> header = post("/adapters/h", "{\"path\": \"bad-header\"}");
        assertEquals(422, header.statusCode(), header.body());
        assertFalse(header.body().contains(SECRET), header.body());
        assertFalse(header.body().contains(System.getProperty("java.io.tmpdir") + "/lora4j-adapter"), "no private path: " + header.body());
        // Nothing was loaded; the good folder still loads and serves.
        assertEquals(201, post("/adapters/ok", "{\"path\": \"good\"}").statusCode());
        HttpResponse<String> p = post("/predict", "{\"pixels\": " + pixels(image(1)) + ", \"adapter\": \"ok\"}");
        assertEquals(200, p.statusCode(), p.body());
        assertEquals(200, HTTP.send(HttpRequest.newBuilder(URI.create(server.url() + "/adapters/ok")).DELETE().build(),
                HttpResponse.BodyHandlers.ofString()).statusCode());
    }

    @Test
    void namesTheServiceAcceptsAreNamesTheLibraryAccepts() throws Exception {
        HttpResponse<String> dotted = post("/adapters/a.b", "{\"path\": \"good\"}");
        assertEquals(400, dotted.statusCode(), dotted.body());
        assertEquals(400, post("/adapters/__base__", "{\"path\": \"good\"}").statusCode());
    }

    @Test
    void aSlowClientHoldsNoInferenceWorkerAndIsCutOff() throws Exception {
        try (Socket slow = new Socket(server.url().replaceAll("http://|:\\d+$", ""), server.port())) {
            OutputStream out = slow.getOutputStream();
            out.write(("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n{\"pix")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            // With one inference worker, a request from another client is served while the slow one still sends.
            HttpResponse<String> p = post("/predict", "{\"pixels\": " + pixels(image(2)) + "}");
            assertEquals(200, p.statusCode(), p.body());
            // The slow client is disconnected when its body time (2 s) is up: end of stream, no answer.
            slow.setSoTimeout(15_000);
            InputStream in = slow.getInputStream();
            int b;
            try {
                b = in.read();
            } catch (SocketTimeoutException e) {
                fail("the slow client was not cut off");
                return;
            } catch (java.net.SocketException e) {
                b = -1; // reset: cut off as well
            }
            assertEquals(-1, b, "the slow client got an answer instead of being cut off");
        }
    }
}
