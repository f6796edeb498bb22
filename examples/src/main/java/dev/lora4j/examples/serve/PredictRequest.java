package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.lora.AdapterBank;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Set;

/**
 * A checked {@code POST /predict} body:
 *
 * <pre>{@code
 * {"pixels": [784 numbers in [0, 1]] | [[784 numbers], ...],   required; one row or a batch
 *  "adapter": "name" | "__base__" | ["name per row", ...],      optional, default "__base__"
 *  "rank": 4}                                                   optional; DyLoRA adapters only
 * }</pre>
 *
 * Every field is checked: an unknown field, a wrong type or a row of the wrong length is a
 * 400, a value out of range (a pixel outside [0, 1], a rank below 1) a 422. Whether the named
 * adapters exist and can serve the rank is checked by {@link AdapterModel#forward} under its
 * lock (404 / 422).
 *
 * @param pixels the rows, row-major (rows × features)
 * @param adapters one adapter name per row
 * @param rank the DyLoRA rank, or null for each adapter's full rank
 */
record PredictRequest(float[] pixels, int rows, String[] adapters, Integer rank) {

    private static final Set<String> FIELDS = Set.of("pixels", "adapter", "rank");

    /** Checks {@code body} for a model of {@code features} inputs and at most {@code maxRows} rows. */
    static PredictRequest parse(JsonNode body, int features, int maxRows) {
        if (body == null || !body.isObject()) throw ApiError.badRequest("the body must be a JSON object");
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) throw ApiError.badRequest("unknown field '" + AdapterFolders.clip(f) + "' (fields: pixels, adapter, rank)");
        }
        JsonNode px = body.get("pixels");
        if (px == null || px.isNull()) throw ApiError.badRequest("'pixels' is required");
        if (!px.isArray() || px.isEmpty()) throw ApiError.badRequest("'pixels' must be an array of " + features + " numbers or a non-empty array of such arrays");
        boolean batch = px.get(0).isArray();
        int rows = batch ? px.size() : 1;
        if (rows > maxRows) throw new ApiError(413, "a request holds at most " + maxRows + " rows, got " + rows);
        float[] pixels = new float[rows * features];
        for (int r = 0; r < rows; r++) {
            JsonNode row = batch ? px.get(r) : px;
            String where = batch ? "pixels[" + r + "]" : "pixels";
            if (!row.isArray()) throw ApiError.badRequest(where + " must be an array of " + features + " numbers");
            if (row.size() != features) throw ApiError.badRequest(where + " must hold " + features + " numbers, got " + row.size());
            for (int c = 0; c < features; c++) {
                JsonNode v = row.get(c);
                if (!v.isNumber()) throw ApiError.badRequest(where + "[" + c + "] must be a number, got " + v.getNodeType().name().toLowerCase());
                double d = v.asDouble();
                if (!(d >= 0 && d <= 1)) throw ApiError.unprocessable(where + "[" + c + "] must be in [0, 1], got " + AdapterFolders.clip(v.asText()));
                pixels[r * features + c] = (float) d;
            }
        }
        String[] adapters = adapters(body.get("adapter"), rows);
        Integer rank = rank(body.get("rank"));
        return new PredictRequest(pixels, rows, adapters, rank);
    }

    private static String[] adapters(JsonNode a, int rows) {
        String[] names = new String[rows];
        if (a == null || a.isNull()) {
            Arrays.fill(names, AdapterBank.BASE);
        } else if (a.isTextual()) {
            Arrays.fill(names, checked(a.asText()));
        } else if (a.isArray()) {
            if (a.size() != rows) throw ApiError.badRequest("'adapter' as an array needs one name per row: " + rows + " rows, " + a.size() + " names");
            for (int r = 0; r < rows; r++) {
                if (!a.get(r).isTextual()) throw ApiError.badRequest("adapter[" + r + "] must be a string");
                names[r] = checked(a.get(r).asText());
            }
        } else {
            throw ApiError.badRequest("'adapter' must be a name, \"" + AdapterBank.BASE + "\" or an array of names (one per row)");
        }
        return names;
    }

    private static String checked(String name) {
        return name.equals(AdapterBank.BASE) ? name : AdapterFolders.checkName(name);
    }

    private static Integer rank(JsonNode r) {
        if (r == null || r.isNull()) return null;
        if (!r.isIntegralNumber() || !r.canConvertToInt()) throw ApiError.badRequest("'rank' must be an integer, got " + AdapterFolders.clip(r.toString()));
        if (r.intValue() < 1) throw ApiError.unprocessable("'rank' must be >= 1, got " + r.intValue());
        return r.intValue();
    }
}
