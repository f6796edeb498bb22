package dev.lora4j.hf;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import dev.lora4j.io.Safetensors;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * HfCheckpoint reads an untrusted folder: JSON files that are not UTF-8, too large or with a
 * key given twice, and shard names that are not plain file names of the folder, are refused
 * with an IOException naming the file (never an unchecked exception, never a lenient reading).
 */
@ExtendWith(ScopePerTest.class)
class HfCheckpointTest {

    static final String SHARD = "model-00001-of-00001.safetensors";
    static final byte[] NOT_UTF8 = {'{', '"', 'a', '"', ':', ' ', '"', (byte) 0xff, '"', '}'};

    @TempDir
    Path dir;

    Path config, index;

    @BeforeEach
    void shardedCheckpoint() throws IOException {
        Safetensors.write(dir.resolve(SHARD), Map.of("w", Tensor.of(new float[] {1, 2, 3}, 3)));
        config = Files.writeString(dir.resolve(HfCheckpoint.CONFIG), "{\"model_type\": \"bert\"}");
        index = Files.writeString(dir.resolve(HfCheckpoint.INDEX), "{\"weight_map\": {\"w\": \"" + SHARD + "\"}}");
    }

    static IOException refused(Path dir, String... parts) {
        var e = assertThrows(IOException.class, () -> {
            try (var c = HfCheckpoint.read(dir)) {
                fail("read");
            }
        });
        for (String p : parts) assertTrue(e.getMessage() != null && e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        return e;
    }

    @Test
    void theShardedCheckpointReads() throws IOException {
        try (var c = HfCheckpoint.read(dir)) {
            assertEquals("{\"model_type\": \"bert\"}", c.config());
            assertArrayEquals(new float[] {1, 2, 3}, c.weights().get("w").toFloatArray());
        }
    }

    @Test
    void aConfigThatIsNotUtf8IsRefusedNamingIt() throws IOException {
        Files.write(config, NOT_UTF8);
        refused(dir, config.toString(), "UTF-8");
        assertThrows(IOException.class, () -> HfCheckpoint.readConfig(dir));
    }

    @Test
    void anIndexThatIsNotUtf8IsRefusedNamingIt() throws IOException {
        Files.write(index, NOT_UTF8);
        refused(dir, index.toString(), "UTF-8");
    }

    @Test
    void aSingleFileCheckpointsConfigThatIsNotUtf8IsRefusedToo() throws IOException {
        Files.delete(index);
        Files.move(dir.resolve(SHARD), dir.resolve(HfCheckpoint.WEIGHTS));
        Files.write(config, NOT_UTF8);
        refused(dir, config.toString(), "UTF-8");
    }

    @Test
    void anIndexWithBadJsonIsRefusedNamingIt() throws IOException {
        Files.writeString(index, "{\"weight_map\": {\"w\": ");
        refused(dir, index.toString());
        Files.writeString(index, "{\"weight_map\": {\"w\": \"" + SHARD + "\", \"w\": \"" + SHARD + "\"}}");
        refused(dir, index.toString(), "'w'");
    }

    @ParameterizedTest
    @ValueSource(strings = {"a\\u0000b.safetensors", "..", ".", "../" + SHARD, "sub/" + SHARD, "sub\\\\x", "", "/etc/passwd",
            "a\\u0001b", "a\\nb"})
    void shardNamesThatAreNotPlainFileNamesAreRefused(String jsonName) throws IOException {
        Files.writeString(index, "{\"weight_map\": {\"w\": \"" + jsonName + "\"}}");
        refused(dir, index.toString(), "plain file name");
    }

    @Test
    void aShardNameThatIsNotAStringIsRefused() throws IOException {
        Files.writeString(index, "{\"weight_map\": {\"w\": 5}}");
        refused(dir, index.toString(), "'w'");
    }

    @Test
    void jsonFilesLargerThanTheCapAreRefused() throws IOException {
        String body = "{\"weight_map\": {\"w\": \"" + SHARD + "\"}}";
        Files.writeString(index, body + " ".repeat((int) HfCheckpoint.MAX_JSON_BYTES + 1 - body.length()));
        refused(dir, index.toString(), "larger than");
        Files.writeString(index, body + " ".repeat((int) HfCheckpoint.MAX_JSON_BYTES - body.length()));
        try (var c = HfCheckpoint.read(dir)) {
            assertEquals(1, c.weights().size());
        }
        String conf = "{\"model_type\": \"bert\"}";
        Files.writeString(config, conf + " ".repeat((int) HfCheckpoint.MAX_JSON_BYTES + 1 - conf.length()));
        refused(dir, config.toString(), "larger than");
    }
}
