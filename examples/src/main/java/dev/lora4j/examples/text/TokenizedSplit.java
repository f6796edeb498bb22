package dev.lora4j.examples.text;

import dev.lora4j.Tensor;
import dev.lora4j.examples.data.PackageDataset;
import dev.lora4j.hftools.BertTokenizer;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A data split tokenized once: {@code n} rows of {@code length} token ids and attention mask
 * (padded to the split's longest text, at most the tokenizer's maximum length) and a label per
 * row, held as Java arrays. {@link #batch} cuts a batch of rows down to its own longest row,
 * so that short texts cost short sequences. Immutable (the arrays are not exposed), thread-safe.
 */
public final class TokenizedSplit {

    private final long[] inputIds;
    private final long[] attentionMask;
    private final long[] labels;
    private final int length;

    private TokenizedSplit(long[] inputIds, long[] attentionMask, long[] labels, int length) {
        this.inputIds = inputIds;
        this.attentionMask = attentionMask;
        this.labels = labels;
        this.length = length;
    }

    /** Tokenizes the examples' texts (truncated to the tokenizer's maximum length). */
    public static TokenizedSplit of(List<PackageDataset.Example> examples, BertTokenizer tokenizer) {
        Objects.requireNonNull(tokenizer, "tokenizer");
        if (examples.isEmpty()) throw new IllegalArgumentException("examples is empty");
        long[] labels = examples.stream().mapToLong(PackageDataset.Example::label).toArray();
        try (BertTokenizer.Batch b = tokenizer.encode(examples.stream().map(PackageDataset.Example::text).toList())) {
            return new TokenizedSplit(b.inputIds().toLongArray(), b.attentionMask().toLongArray(), labels,
                    (int) b.inputIds().size(1));
        }
    }

    /** Rebuilds a split from tensors (input ids and mask (n, length), labels (n)), as {@link #tensors} gives them. */
    public static TokenizedSplit of(Tensor inputIds, Tensor attentionMask, Tensor labels) {
        if (inputIds.dim() != 2 || !java.util.Arrays.equals(inputIds.shape(), attentionMask.shape())
                || labels.dim() != 1 || labels.size(0) != inputIds.size(0)) {
            throw new IllegalArgumentException("input_ids and attention_mask must be (n, length) and labels (n)");
        }
        return new TokenizedSplit(inputIds.toLongArray(), attentionMask.toLongArray(), labels.toLongArray(),
                (int) inputIds.size(1));
    }

    public int size() {
        return labels.length;
    }

    /** The padded length of every row. */
    public int length() {
        return length;
    }

    /** The label of every row (a copy). */
    public long[] labels() {
        return labels.clone();
    }

    /** Real tokens of a row (its mask's sum). */
    public int tokens(int row) {
        int t = 0;
        for (int j = 0; j < length; j++) t += (int) attentionMask[row * length + j];
        return t;
    }

    /** Rows {@code rows} as tensors (ids and mask (rows, longest real length), labels (rows)), owned by the caller. */
    public Batch batch(int[] rows) {
        int len = 1;
        for (int r : rows) len = Math.max(len, tokens(r));
        long[] ids = new long[rows.length * len];
        long[] mask = new long[rows.length * len];
        long[] y = new long[rows.length];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(inputIds, rows[i] * length, ids, i * len, len);
            System.arraycopy(attentionMask, rows[i] * length, mask, i * len, len);
            y[i] = labels[rows[i]];
        }
        return new Batch(Tensor.of(ids, rows.length, len), Tensor.of(mask, rows.length, len), Tensor.of(y, rows.length));
    }

    /** The whole split as tensors named {@code <prefix>.input_ids}, {@code .attention_mask}, {@code .labels} (caller owns them). */
    public Map<String, Tensor> tensors(String prefix) {
        return Map.of(prefix + ".input_ids", Tensor.of(inputIds, size(), length),
                prefix + ".attention_mask", Tensor.of(attentionMask, size(), length),
                prefix + ".labels", Tensor.of(labels, size()));
    }

    /** One batch: int64 tensors owned by the caller (or the current scope). */
    public record Batch(Tensor inputIds, Tensor attentionMask, Tensor labels) implements AutoCloseable {
        @Override
        public void close() {
            inputIds.close();
            attentionMask.close();
            labels.close();
        }
    }
}
