package dev.lora4j.hftools;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import dev.lora4j.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer (BERT WordPiece with its normaliser:
 * lower-casing, accent stripping; {@code [CLS]}/{@code [SEP]}; truncation; padding to the
 * longest sentence of a batch; attention mask; token types), run by Hugging Face's own Rust
 * {@code tokenizers} through DJL's JNI wrapper, whose jar carries the native library: nothing
 * is downloaded. Thread-safe for encoding; {@link #close()} frees the native tokenizer.
 */
public final class BertTokenizer implements AutoCloseable {

    /** A batch as the model takes it: int64 (batch, seq) tensors owned by the caller (or the current scope). */
    public record Batch(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) implements AutoCloseable {
        @Override
        public void close() {
            inputIds.close();
            attentionMask.close();
            tokenTypeIds.close();
        }
    }

    private final HuggingFaceTokenizer tokenizer;

    private BertTokenizer(HuggingFaceTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Loads {@code tokenizerJson}, truncating to {@code maxLength} tokens and padding each batch to its longest entry. */
    public static BertTokenizer fromFile(Path tokenizerJson, int maxLength) throws IOException {
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        if (maxLength < 2) throw new IllegalArgumentException("maxLength must be >= 2, got " + maxLength);
        return new BertTokenizer(HuggingFaceTokenizer.newInstance(tokenizerJson,
                Map.of("padding", "longest", "truncation", "true", "maxLength", Integer.toString(maxLength))));
    }

    /** Token ids of one text with [CLS] and [SEP], no padding. */
    public long[] ids(String text) {
        return tokenizer.encode(Objects.requireNonNull(text, "text")).getIds();
    }

    /** Tokens of one text, as strings. */
    public String[] tokens(String text) {
        return tokenizer.encode(Objects.requireNonNull(text, "text")).getTokens();
    }

    /** A padded batch of texts. */
    public Batch encode(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) throw new IllegalArgumentException("texts is empty");
        Encoding[] enc = tokenizer.batchEncode(texts.toArray(String[]::new));
        int n = enc.length, len = enc[0].getIds().length;
        long[] ids = new long[n * len], mask = new long[n * len], types = new long[n * len];
        for (int i = 0; i < n; i++) {
            if (enc[i].getIds().length != len) throw new IllegalStateException("tokenizer did not pad the batch to one length");
            System.arraycopy(enc[i].getIds(), 0, ids, i * len, len);
            System.arraycopy(enc[i].getAttentionMask(), 0, mask, i * len, len);
            System.arraycopy(enc[i].getTypeIds(), 0, types, i * len, len);
        }
        return new Batch(Tensor.of(ids, n, len), Tensor.of(mask, n, len), Tensor.of(types, n, len));
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
