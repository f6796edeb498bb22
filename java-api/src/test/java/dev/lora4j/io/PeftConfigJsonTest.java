package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * adapter_config.json that is no JSON object, or more than one: refused by the position and the
 * kind of the error, quoting nothing of the file (it may be a link to a secret), and refused whole
 * when text follows the object (Python's {@code json.load}, which PEFT uses, refuses it too).
 */
class PeftConfigJsonTest {

    private static final String SECRET = "sk_live_SUPERSECRET_TOKEN_123456";

    private static IOException refused(String text) {
        return assertThrows(IOException.class, () -> PeftConfigJson.parse("adapter_config.json",
                text.getBytes(StandardCharsets.UTF_8), new BoundedRegex("adapter_config.json", BoundedRegex.DEFAULT_BUDGET)), text);
    }

    /** The message and everything chained to it (a stack trace in a log shows the causes too). */
    private static String everything(Throwable e) {
        StringWriter w = new StringWriter();
        e.printStackTrace(new PrintWriter(w));
        return w.toString();
    }

    @Test
    void aFileThatIsNotJsonIsRefusedWithoutQuotingIt() {
        for (String text : new String[] {SECRET, SECRET + "\n", "{\"r\": 8, " + SECRET + "}", "{\"r\": \"" + SECRET,
            "{\"r\": 8}\n" + SECRET, "[\"" + SECRET + "\"", "{\"" + SECRET + "\u0001\": 1}", "{\"r\": 8, \"a\": \"\\q" + SECRET + "\"}"}) {
            IOException e = refused(text);
            assertTrue(e.getMessage().startsWith("adapter_config.json: bad JSON: ") && e.getMessage().contains(" at line "), e.getMessage());
            assertFalse(everything(e).contains("SUPERSECRET"), everything(e));
        }
        IOException e = refused("{\"r\": 8,\n  " + SECRET + "}");
        assertTrue(e.getMessage().contains("line 2, column"), e.getMessage());
    }

    @Test
    void textAfterTheObjectIsRefusedButWhitespaceIsNot() throws IOException {
        for (String tail : new String[] {" {\"r\": 16}", " 1", "]", "}", " null"}) {
            IOException e = refused("{\"r\": 8}" + tail);
            assertTrue(e.getMessage().contains("bad JSON"), e.getMessage());
        }
        var parsed = PeftConfigJson.parse("adapter_config.json", "{\"r\": 8, \"target_modules\": [\"q\"]} \n\t\r\n  ".getBytes(StandardCharsets.UTF_8),
                new BoundedRegex("adapter_config.json", BoundedRegex.DEFAULT_BUDGET));
        assertEquals(8, parsed.config().r());
    }
}
