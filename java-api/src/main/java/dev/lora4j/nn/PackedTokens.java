package dev.lora4j.nn;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * The real tokens of a padded batch, for running token-wise layers (projections, feed-forward,
 * LayerNorm) on them alone: {@link #pack} turns (batch, seq, ...) into (tokens, ...) and
 * {@link #unpack} back, with zeros at the padded positions, as Hugging Face's flash-attention
 * path does with {@code unpad_input}/{@code pad_input} and PyTorch's
 * {@code TransformerEncoder(enable_nested_tensor=True)} with nested tensors. Both are
 * {@code index_select}s, so gradients flow through them (into the real positions only).
 *
 * <p>Layers that take something per batch row (the adapter of each row of a mixed LoRA batch)
 * get it per token while a forward runs on the packed tokens ({@link #run}, {@link #spreadRows}).
 *
 * <p>Built from an attention mask (batch, seq) of 1 (real token) and 0 (padding), in any dtype.
 * Owns two small index tensors: {@link #close()} frees them (a scope that is open when it is
 * built owns them too). Immutable after construction; using one from several threads at once
 * is safe.
 */
public final class PackedTokens implements AutoCloseable {

    /** The layout of the packed forward running on this thread (see {@link #run}), or null. */
    private static final ThreadLocal<PackedTokens> CURRENT = new ThreadLocal<>();

    private final long batch;
    private final long seq;
    private final long tokens;
    /** (tokens,) int64: the flat position (b·seq + s) of each real token, in order. */
    private final Tensor index;
    /** (batch·seq,) int64: each flat position's row in the packed tensor, or {@code tokens} (the zero row) for padding. */
    private final Tensor inverse;
    /** The batch row of each real token. */
    private final int[] rowOfToken;
    /** Whether each flat position (b·seq + s) is a real token. */
    private final boolean[] real;
    /** The last {@link #spreadRows} result (racy but safe: a record of arrays nobody changes). */
    private volatile Spread lastSpread;

    private PackedTokens(long batch, long seq, long[] index, long[] inverse) {
        this.batch = batch;
        this.seq = seq;
        this.tokens = index.length;
        this.rowOfToken = new int[index.length];
        this.real = new boolean[inverse.length];
        for (int k = 0; k < index.length; k++) {
            rowOfToken[k] = (int) (index[k] / seq);
            real[(int) index[k]] = true;
        }
        try (TensorScope s = TensorScope.open()) { // all or nothing
            Tensor i = Tensor.of(index, index.length), inv = Tensor.of(inverse, inverse.length);
            this.index = i.keep();
            this.inverse = inv.keep();
        }
    }

    /** The real tokens of {@code attentionMask} (batch, seq): its entries 1; other values than 0 and 1 are refused. */
    public static PackedTokens of(Tensor attentionMask) {
        Objects.requireNonNull(attentionMask, "attentionMask");
        if (attentionMask.dim() != 2) {
            throw new IllegalArgumentException("PackedTokens: the attention mask must be (batch, seq), got "
                    + Arrays.toString(attentionMask.shape()));
        }
        long batch = attentionMask.size(0), seq = attentionMask.size(1);
        double[] m = attentionMask.toDoubleArray(); // any dtype; a mask is small
        long[] inverse = new long[m.length];
        int n = 0;
        for (int i = 0; i < m.length; i++) {
            if (m[i] != 0 && m[i] != 1) {
                throw new IllegalArgumentException("PackedTokens: an attention mask holds 1 (token) or 0 (padding), got " + m[i]
                        + " at row " + i / seq + ", position " + i % seq);
            }
            if (m[i] != 0) n++;
        }
        long[] index = new long[n];
        int k = 0;
        for (int i = 0; i < m.length; i++) {
            if (m[i] != 0) {
                index[k] = i;
                inverse[i] = k++;
            } else {
                inverse[i] = n;
            }
        }
        return new PackedTokens(batch, seq, index, inverse);
    }

    /** Rows of the batch. */
    public long batch() {
        return batch;
    }

    /** Positions per row, padding included. */
    public long seq() {
        return seq;
    }

    /** Real tokens: the rows of a packed tensor. */
    public long tokens() {
        return tokens;
    }

    /** Whether position {@code position} of row {@code row} is a real token. */
    public boolean isReal(long row, long position) {
        Objects.checkIndex(row, batch);
        Objects.checkIndex(position, seq);
        return real[(int) (row * seq + position)];
    }

    /** Whether the batch has any padding (else packing changes nothing but the layout). */
    public boolean hasPadding() {
        return tokens < batch * seq;
    }

    /** (batch, seq, ...) to (tokens, ...): the real positions, in order. */
    public Tensor pack(Tensor padded) {
        Objects.requireNonNull(padded, "padded");
        long[] shape = padded.shape();
        if (shape.length < 2 || shape[0] != batch || shape[1] != seq) {
            throw new IllegalArgumentException("PackedTokens.pack: expected (" + batch + ", " + seq + ", ...), got " + Arrays.toString(shape));
        }
        long[] flat = Arrays.copyOfRange(shape, 1, shape.length);
        flat[0] = batch * seq;
        try (TensorScope s = TensorScope.open()) {
            return padded.reshape(flat).indexSelect(0, index).keep();
        }
    }

    /** (tokens, ...) to (batch, seq, ...), zeros at the padded positions. */
    public Tensor unpack(Tensor packed) {
        Objects.requireNonNull(packed, "packed");
        long[] shape = packed.shape();
        if (shape.length < 1 || shape[0] != tokens) {
            throw new IllegalArgumentException("PackedTokens.unpack: expected (" + tokens + ", ...), got " + Arrays.toString(shape));
        }
        long[] zeroRow = shape.clone();
        zeroRow[0] = 1;
        long[] out = new long[shape.length + 1];
        out[0] = batch;
        out[1] = seq;
        System.arraycopy(shape, 1, out, 2, shape.length - 1);
        try (TensorScope s = TensorScope.open()) {
            Tensor withZero = Tensor.cat(List.of(packed, Tensor.zeros(packed.dtype(), zeroRow)), 0);
            return withZero.indexSelect(0, inverse).view(out).keep();
        }
    }

    /**
     * Runs {@code body} (a forward on this layout's packed tokens) with this layout as the
     * calling thread's current one, so that what is given per batch row, such as the adapter of
     * each row of a mixed LoRA batch, reaches each token of that row ({@link #spreadRows}).
     */
    public <T> T run(Supplier<T> body) {
        PackedTokens before = CURRENT.get();
        CURRENT.set(this);
        try {
            return body.get();
        } finally {
            if (before == null) CURRENT.remove();
            else CURRENT.set(before);
        }
    }

    /**
     * What a layer given one value per batch row ({@code perRow}) should use for an input whose
     * dimension 0 has {@code inputRows} entries: inside {@link #run} of a layout whose batch has
     * {@code perRow.length} rows and whose packed form has {@code inputRows} tokens, the value of
     * each token's row, in token order; otherwise {@code perRow} itself.
     *
     * @throws IllegalArgumentException for a packed input whose batch has another number of rows
     */
    public static <E> E[] spreadRows(E[] perRow, long inputRows) {
        PackedTokens p = CURRENT.get();
        if (p == null || inputRows != p.tokens) return perRow;
        if (perRow.length != p.batch) {
            throw new IllegalArgumentException(perRow.length + " values, one per row, for a packed batch of " + p.batch + " rows ("
                    + p.tokens + " real tokens)");
        }
        Spread last = p.lastSpread; // every LoRA layer of one forward asks with the same array
        if (last != null && last.perRow == perRow) {
            @SuppressWarnings("unchecked")
            E[] cached = (E[]) last.perToken;
            return cached;
        }
        E[] out = Arrays.copyOf(perRow, p.rowOfToken.length);
        for (int k = 0; k < out.length; k++) out[k] = perRow[p.rowOfToken[k]];
        p.lastSpread = new Spread(perRow, out);
        return out;
    }

    /** A spread of per-row values and its result; the arrays are not changed after they are made. */
    private record Spread(Object[] perRow, Object[] perToken) {}

    @Override
    public void close() {
        index.close();
        inverse.close();
    }
}
