package dev.lora4j.hftools;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.testing.ChildJvm;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The tokenizer on files and uses it must refuse without bringing the JVM down. */
class BertTokenizerTest {

    @TempDir
    static Path dir;

    static Path json;

    @BeforeAll
    static void copyTokenizer() throws IOException {
        json = dir.resolve("tokenizer.json");
        try (InputStream in = BertTokenizerTest.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            assertNotNull(in, "all-minilm-l6-v2-tokenizer.json is not on the test class path");
            Files.copy(in, json);
        }
    }

    private static Path edited(String name, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = (ObjectNode) mapper.readTree(json.toFile());
        edit.accept((ObjectNode) root.get("model"));
        Path f = dir.resolve(name);
        mapper.writeValue(f.toFile(), root);
        return f;
    }

    /** DJL aborts the process on a word WordPiece cannot split when the unknown token is missing: refused at load. */
    @Test
    void wordPieceWhoseUnknownTokenIsNotInTheVocabIsRefused() throws IOException {
        Path noUnk = edited("no-unk.json", m -> ((ObjectNode) m.get("vocab")).remove("[UNK]"));
        IOException e = assertThrows(IOException.class, () -> BertTokenizer.fromFile(noUnk, 16).close());
        assertTrue(e.getMessage().contains("[UNK]") && e.getMessage().contains("no-unk.json"), e.getMessage());
        Path nope = edited("nope.json", m -> m.put("unk_token", "[NOPE]"));
        e = assertThrows(IOException.class, () -> BertTokenizer.fromFile(nope, 16).close());
        assertTrue(e.getMessage().contains("[NOPE]"), e.getMessage());
        Path bpe = edited("bpe.json", m -> m.put("type", "BPE"));
        assertThrows(IOException.class, () -> BertTokenizer.fromFile(bpe, 16).close());
        Path notJson = dir.resolve("not.json");
        Files.writeString(notJson, "{\"model\": ");
        assertThrows(IOException.class, () -> BertTokenizer.fromFile(notJson, 16).close());
    }

    @Test
    void maxLengthAbove512Truncates() throws IOException {
        try (BertTokenizer t = BertTokenizer.fromFile(json, 600)) {
            assertEquals(600, t.ids("long ".repeat(700)).length);
            assertEquals(5, t.ids("a b c").length);
        }
        try (BertTokenizer t = BertTokenizer.fromFile(json, 16)) {
            assertEquals(16, t.ids("long ".repeat(700)).length);
        }
    }

    @Test
    void everyCallAfterCloseIsRefused() throws IOException {
        BertTokenizer t = BertTokenizer.fromFile(json, 16);
        t.close();
        assertThrows(IllegalStateException.class, () -> t.ids("hello"));
        assertThrows(IllegalStateException.class, () -> t.tokens("hello"));
        assertThrows(IllegalStateException.class, () -> t.encode(List.of("hello")));
        t.close();
    }

    /** close() while other threads encode freed the native tokenizer under them: a use-after-free abort. */
    @Test
    void closingWhileOtherThreadsEncodeNeverCrashes() throws Exception {
        // DJL's settings go along: offline, and where its native library is cached.
        List<String> djl = new java.util.ArrayList<>();
        for (String k : new String[] {"offline", "DJL_CACHE_DIR"}) {
            if (System.getProperty(k) != null) djl.add("-D" + k + "=" + System.getProperty(k));
        }
        ChildJvm.Result r = ChildJvm.run(TokenizerCloseRace.class, djl, 120, java.util.Map.of(), json.toString(), "20");
        assertEquals(0, r.exitCode(), r.toString());
        assertTrue(r.output().contains("survived"), r.toString());
    }
}
