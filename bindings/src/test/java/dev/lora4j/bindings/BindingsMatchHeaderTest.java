package dev.lora4j.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/** Fails the build when the shim header changed but the bindings were not regenerated. */
class BindingsMatchHeaderTest {

    @Test
    void generatedBindingsMatchTheHeader() throws IOException, NoSuchAlgorithmException {
        Path header = Path.of(System.getProperty("lora4j.header", "../native-shim/include/lora4j.h"));
        String actual = HexFormat.of().formatHex(
                MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(header)));
        String recorded;
        try (InputStream in = LibLora4j.class.getResourceAsStream("lora4j.h.sha256")) {
            recorded = new String(in.readAllBytes(), StandardCharsets.US_ASCII).trim();
        }
        assertEquals(recorded, actual,
                header + " changed since the bindings were generated: run scripts/regenerate-bindings.sh");
    }
}
