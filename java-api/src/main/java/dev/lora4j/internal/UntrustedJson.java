package dev.lora4j.internal;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.core.io.JsonEOFException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/**
 * JSON read from untrusted files. A file holds one JSON value and nothing after it but JSON
 * whitespace (space, tab, line feed, carriage return), as Python's {@code json.loads} and Rust's
 * {@code serde_json::from_str} require. A file that is no such JSON is refused by the position and
 * the kind of the error only: Jackson's messages quote the input, and the file read may be a
 * secret (a link to it, or a wrong path).
 *
 * <p>Internal: not part of lora4j's API. Stateless, thread-safe.
 */
public final class UntrustedJson {

    private UntrustedJson() {}

    /** {@code mapper} refusing text after the value; the caller adds its other features. */
    public static ObjectMapper mapper() {
        return new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    }

    /** The JSON value of {@code bytes}; refused as {@code "<where>: bad JSON: <kind> at line L, column C"}. */
    public static JsonNode read(ObjectMapper mapper, byte[] bytes, String where) throws IOException {
        try {
            return mapper.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw new IOException(where + ": bad JSON: " + describe(e));
        }
    }

    /**
     * The kind and the position of a JSON error, without a character of the input: Jackson's own
     * message names the offending token, so only its fixed opening words are looked at.
     */
    /**
     * The repeated name of a "Duplicate field 'name'" message when it looks like a field name
     * (at most 64 letters, digits, '_', '.' or '-'): a key, never a value, and the one fact a
     * user needs to fix the file; else nothing.
     */
    private static String duplicated(String message) {
        int a = message.indexOf('\''), b = message.indexOf('\'', a + 1);
        if (a < 0 || b < 0) return "";
        String name = message.substring(a + 1, b);
        return name.matches("[A-Za-z0-9_.-]{1,64}") ? " '" + name + "'" : "";
    }

    public static String describe(JsonProcessingException e) {
        String m = String.valueOf(e.getOriginalMessage());
        String kind;
        if (e instanceof JsonEOFException || m.startsWith("Unexpected end-of-input")) kind = "the text ends inside a value";
        else if (e instanceof StreamConstraintsException) kind = "a value past the parser's limits (nesting, length)";
        else if (m.startsWith("Duplicate field")) kind = "duplicate name" + duplicated(m);
        else if (m.startsWith("Trailing token")) kind = "text after the JSON value";
        else if (m.startsWith("Invalid UTF-8") || m.startsWith("Invalid UTF-32")) kind = "invalid UTF-8";
        else if (m.startsWith("Illegal unquoted character")) kind = "a control character in a string";
        else if (m.startsWith("Unrecognized token") || m.startsWith("Unrecognized character escape")) kind = "unrecognized token";
        else if (m.startsWith("Unexpected character") || m.startsWith("Illegal character")) kind = "unexpected character";
        else kind = "syntax error";
        var at = e.getLocation();
        return kind + (at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr());
    }
}
