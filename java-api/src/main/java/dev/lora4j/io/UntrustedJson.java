package dev.lora4j.io;

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
 * secret (a link to it, or a wrong path). Stateless, thread-safe.
 */
final class UntrustedJson {

    private UntrustedJson() {}

    /** {@code mapper} refusing text after the value; the caller adds its other features. */
    static ObjectMapper mapper() {
        return new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    }

    /** The JSON value of {@code bytes}; refused as {@code "<where>: bad JSON: <kind> at line L, column C"}. */
    static JsonNode read(ObjectMapper mapper, byte[] bytes, String where) throws IOException {
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
    static String describe(JsonProcessingException e) {
        String m = String.valueOf(e.getOriginalMessage());
        String kind;
        if (e instanceof JsonEOFException || m.startsWith("Unexpected end-of-input")) kind = "the text ends inside a value";
        else if (e instanceof StreamConstraintsException) kind = "a value past the parser's limits (nesting, length)";
        else if (m.startsWith("Duplicate field")) kind = "duplicate name";
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
