package dev.lora4j.examples.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Locale;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/** Reading bounded JSON bodies from, and writing JSON answers to, an {@link HttpExchange}. */
final class Exchanges {

    /** Strict JSON: duplicate keys are an error, no NaN/Infinity literals, no trailing tokens. */
    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    private Exchanges() {}

    /**
     * The request body, at most {@code max} bytes, within {@code seconds}: a declared or actual
     * larger body is a 413 without reading the rest; a client that has not sent it all when the
     * time is up is disconnected (the connection closed under the read) and gets no answer.
     */
    static byte[] body(HttpExchange ex, int max, int seconds, ScheduledExecutorService timer) throws IOException {
        AtomicBoolean timedOut = new AtomicBoolean();
        ScheduledFuture<?> deadline = timer.schedule(() -> {
            timedOut.set(true);
            ex.close(); // no response sent yet: closes the connection, so the blocked read fails
        }, seconds, TimeUnit.SECONDS);
        try {
            return body(ex, max);
        } catch (IOException e) {
            if (timedOut.get()) throw new IOException("the client did not send its body within " + seconds + " s", e);
            throw e;
        } finally {
            deadline.cancel(false);
        }
    }

    private static byte[] body(HttpExchange ex, int max) throws IOException {
        String declared = ex.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            long n;
            try {
                n = Long.parseLong(declared.trim());
            } catch (NumberFormatException e) {
                throw ApiError.badRequest("Content-Length is not a number");
            }
            if (n > max) throw new ApiError(413, "the body is " + n + " bytes; the limit is " + max);
        }
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = in.readNBytes(max + 1);
            if (b.length > max) throw new ApiError(413, "the body exceeds the limit of " + max + " bytes");
            return b;
        }
    }

    /** The body as JSON; 415 unless it is declared {@code application/json}, 400 when it does not parse. */
    static JsonNode json(HttpExchange ex, int max, int seconds, ScheduledExecutorService timer) throws IOException {
        String type = ex.getRequestHeaders().getFirst("Content-Type");
        if (type == null || !type.toLowerCase(Locale.ROOT).startsWith("application/json")) {
            throw new ApiError(415, "the body must be application/json");
        }
        byte[] b = body(ex, max, seconds, timer);
        if (b.length == 0) throw ApiError.badRequest("the body is empty; a JSON object is expected");
        try {
            return JSON.readTree(b);
        } catch (JsonProcessingException e) {
            throw ApiError.badRequest("malformed JSON: " + AdapterFolders.clip(e.getOriginalMessage()));
        }
    }

    /** Sends {@code body} with {@code status}. */
    static void send(HttpExchange ex, int status, JsonNode body) throws IOException {
        byte[] bytes = JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json; charset=utf-8");
        if (status == 413) ex.getResponseHeaders().set("Connection", "close");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** {@code {"error": message, "status": status}}. */
    static ObjectNode error(int status, String message) {
        ObjectNode n = JSON.createObjectNode();
        n.put("error", message);
        n.put("status", status);
        return n;
    }
}
