package dev.lora4j.examples.serve;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * A checked {@code POST /classify} body, in one of two shapes:
 *
 * <pre>{@code
 * {"text": "one text" | ["text", ...],            required
 *  "tenant": "name" | ["name per text", ...],      required: one tenant for all, or one per text
 *  "rank": 4 | [4, null, ...]}                     optional: DyLoRA tenants only, for all or per text
 *
 * {"inputs": [{"text": "...", "tenant": "name", "rank": 4}, ...]}    the same, one object per row
 * }</pre>
 *
 * Every field is checked: an unknown field, a wrong type, a missing text or tenant, arrays of
 * different lengths, a bad tenant name or a rank below 1 is a 400; more rows than
 * {@code maxRows} or a text longer than {@code maxChars} characters is a 413. Whether the tenants
 * exist and can serve the rank is checked when they are leased (404 / 400).
 *
 * @param texts the rows' texts
 * @param tenants each row's tenant
 * @param ranks each row's rank, or null for the tenant's own
 */
record ClassifyRequest(List<String> texts, List<String> tenants, List<Integer> ranks) {

    private static final Set<String> FIELDS = Set.of("text", "tenant", "rank");

    int rows() {
        return texts.size();
    }

    static ClassifyRequest parse(JsonNode body, int maxRows, int maxChars) {
        if (body == null || !body.isObject()) throw ApiError.badRequest("the body must be a JSON object");
        List<String> texts = new ArrayList<>();
        List<String> tenants = new ArrayList<>();
        List<Integer> ranks = new ArrayList<>();
        if (body.has("inputs")) {
            if (body.size() != 1) throw ApiError.badRequest("with 'inputs', no other field is allowed");
            JsonNode in = body.get("inputs");
            if (!in.isArray() || in.isEmpty()) throw ApiError.badRequest("'inputs' must be a non-empty array of {\"text\", \"tenant\", \"rank\"} objects");
            if (in.size() > maxRows) throw new ApiError(413, "a request holds at most " + maxRows + " rows, got " + in.size());
            for (int i = 0; i < in.size(); i++) {
                JsonNode row = in.get(i);
                String where = "inputs[" + i + "]";
                if (!row.isObject()) throw ApiError.badRequest(where + " must be an object {\"text\", \"tenant\", \"rank\"}");
                checkFields(row, where);
                texts.add(text(row.get("text"), where + ".text", maxChars));
                tenants.add(tenant(row.get("tenant"), where + ".tenant"));
                ranks.add(rank(row.get("rank"), where + ".rank"));
            }
            return new ClassifyRequest(List.copyOf(texts), List.copyOf(tenants), java.util.Collections.unmodifiableList(ranks));
        }
        checkFields(body, "the body");
        JsonNode t = body.get("text");
        if (t == null || t.isNull()) throw ApiError.badRequest("'text' is required (or 'inputs')");
        if (t.isArray()) {
            if (t.isEmpty()) throw ApiError.badRequest("'text' must not be an empty array");
            if (t.size() > maxRows) throw new ApiError(413, "a request holds at most " + maxRows + " rows, got " + t.size());
            for (int i = 0; i < t.size(); i++) texts.add(text(t.get(i), "text[" + i + "]", maxChars));
        } else {
            texts.add(text(t, "text", maxChars));
        }
        int rows = texts.size();
        JsonNode tn = body.get("tenant");
        if (tn == null || tn.isNull()) throw ApiError.badRequest("'tenant' is required: a name, or one name per text");
        if (tn.isArray()) {
            if (tn.size() != rows) throw ApiError.badRequest("'tenant' as an array needs one name per text: " + rows + " texts, " + tn.size() + " names");
            for (int i = 0; i < rows; i++) tenants.add(tenant(tn.get(i), "tenant[" + i + "]"));
        } else {
            String name = tenant(tn, "tenant");
            for (int i = 0; i < rows; i++) tenants.add(name);
        }
        JsonNode r = body.get("rank");
        if (r != null && r.isArray()) {
            if (r.size() != rows) throw ApiError.badRequest("'rank' as an array needs one entry per text: " + rows + " texts, " + r.size() + " ranks");
            for (int i = 0; i < rows; i++) ranks.add(rank(r.get(i), "rank[" + i + "]"));
        } else {
            Integer rank = rank(r, "rank");
            for (int i = 0; i < rows; i++) ranks.add(rank);
        }
        return new ClassifyRequest(List.copyOf(texts), List.copyOf(tenants), java.util.Collections.unmodifiableList(ranks));
    }

    private static void checkFields(JsonNode o, String where) {
        for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                throw ApiError.badRequest("unknown field '" + AdapterFolders.clip(f) + "' in " + where + " (fields: text, tenant, rank; or inputs)");
            }
        }
    }

    private static String text(JsonNode v, String where, int maxChars) {
        if (v == null || v.isNull()) throw ApiError.badRequest("'" + where + "' is required");
        if (!v.isTextual()) throw ApiError.badRequest("'" + where + "' must be a string");
        String s = v.asText();
        if (s.length() > maxChars) throw new ApiError(413, "'" + where + "' has " + s.length() + " characters; the limit is " + maxChars);
        return s;
    }

    private static String tenant(JsonNode v, String where) {
        if (v == null || v.isNull()) throw ApiError.badRequest("'" + where + "' is required");
        if (!v.isTextual()) throw ApiError.badRequest("'" + where + "' must be a tenant name (a string)");
        return AdapterFolders.checkName(v.asText());
    }

    private static Integer rank(JsonNode v, String where) {
        if (v == null || v.isNull()) return null;
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw ApiError.badRequest("'" + where + "' must be an integer, got " + AdapterFolders.clip(v.toString()));
        if (v.intValue() < 1) throw ApiError.badRequest("'" + where + "' must be >= 1, got " + v.intValue());
        return v.intValue();
    }
}
