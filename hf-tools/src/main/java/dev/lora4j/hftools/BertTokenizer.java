package dev.lora4j.hftools;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer (BERT WordPiece with its normaliser:
 * lower-casing, accent stripping; {@code [CLS]}/{@code [SEP]}; truncation; padding to the
 * longest sentence of a batch; attention mask; token types), run by Hugging Face's own Rust
 * {@code tokenizers} through DJL's JNI wrapper, whose jar carries the native library: nothing
 * is downloaded.
 *
 * <p>The file is untrusted: it must hold a WordPiece model whose unknown token is in its vocabulary
 * (Hugging Face's Rust code fails on a word it cannot split otherwise, and DJL turns that failure
 * into a process abort). Thread-safe: encodings run concurrently; {@link #close()} waits for the
 * ones under way, then frees the native tokenizer, after which every call throws
 * {@link IllegalStateException}.
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
    /** Encodings hold the read lock, close the write lock: the native tokenizer is never freed under a running encoding. */
    private final ReadWriteLock lock = new ReentrantReadWriteLock();
    private boolean closed;

    private BertTokenizer(HuggingFaceTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Loads {@code tokenizerJson}, truncating to {@code maxLength} tokens and padding each batch to its longest entry. */
    public static BertTokenizer fromFile(Path tokenizerJson, int maxLength) throws IOException {
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        if (maxLength < 2) throw new IllegalArgumentException("maxLength must be >= 2, got " + maxLength);
        checkModel(tokenizerJson);
        // DJL caps maxLength at modelMaxLength, 512 unless told: tell it.
        String max = Integer.toString(maxLength);
        return new BertTokenizer(HuggingFaceTokenizer.newInstance(tokenizerJson,
                Map.of("padding", "longest", "truncation", "true", "maxLength", max, "modelMaxLength", max)));
    }

    /**
     * Refuses a file whose model would make the native tokenizer fail on some text: not WordPiece,
     * or a WordPiece whose unknown token (default {@code [UNK]}, as Hugging Face's) is not in its vocabulary.
     */
    private static void checkModel(Path file) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (JacksonException e) {
            throw new IOException(file + ": not a tokenizer.json: " + e.getOriginalMessage(), e);
        }
        JsonNode model = root == null ? null : root.get("model");
        if (model == null || !model.isObject()) throw new IOException(file + ": no \"model\" object");
        JsonNode type = model.get("type");
        if (type == null || !type.isTextual() || !type.asText().equals("WordPiece")) {
            throw new IOException(file + ": model type is " + (type == null ? "missing" : type) + ", BertTokenizer needs \"WordPiece\"");
        }
        JsonNode vocab = model.get("vocab");
        if (vocab == null || !vocab.isObject() || vocab.isEmpty()) throw new IOException(file + ": WordPiece model has no vocab");
        JsonNode unkNode = model.get("unk_token");
        if (unkNode != null && !unkNode.isTextual()) throw new IOException(file + ": WordPiece unk_token is not a string: " + unkNode);
        String unk = unkNode == null ? "[UNK]" : unkNode.asText();
        if (!vocab.has(unk)) {
            throw new IOException(file + ": WordPiece unk_token '" + unk + "' is not in model.vocab (words it cannot split would fail)");
        }
    }

    /** Runs {@code work} unless closed; close waits for it. */
    private <T> T use(Supplier<T> work) {
        lock.readLock().lock();
        try {
            if (closed) throw new IllegalStateException("BertTokenizer is closed");
            return work.get();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Token ids of one text with [CLS] and [SEP], no padding. */
    public long[] ids(String text) {
        Objects.requireNonNull(text, "text");
        return use(() -> tokenizer.encode(text).getIds());
    }

    /** Tokens of one text, as strings. */
    public String[] tokens(String text) {
        Objects.requireNonNull(text, "text");
        return use(() -> tokenizer.encode(text).getTokens());
    }

    /** A padded batch of texts. */
    public Batch encode(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) throw new IllegalArgumentException("texts is empty");
        String[] array = texts.toArray(String[]::new);
        for (int i = 0; i < array.length; i++) Objects.requireNonNull(array[i], "texts[" + i + "]");
        Encoding[] enc = use(() -> tokenizer.batchEncode(array));
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
        lock.writeLock().lock();
        try {
            if (closed) return;
            closed = true;
            tokenizer.close();
        } finally {
            lock.writeLock().unlock();
        }
    }
}
