package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Arrays;

/**
 * Flattens dimensions startDim..endDim into one, as {@code nn.Flatten} (default 1..-1).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Flatten extends Module {

    private final int startDim;
    private final int endDim;

    public Flatten() {
        this(1, -1);
    }

    public Flatten(int startDim, int endDim) {
        this.startDim = startDim;
        this.endDim = endDim;
    }

    @Override
    public Tensor forward(Tensor input) {
        long[] shape = input.shape();
        int rank = shape.length;
        int s = startDim < 0 ? startDim + rank : startDim;
        int e = endDim < 0 ? endDim + rank : endDim;
        if (s < 0 || e >= rank || s > e) {
            throw new IllegalArgumentException("Flatten(" + startDim + ", " + endDim + ") does not fit shape " + Arrays.toString(shape));
        }
        long[] out = new long[rank - (e - s)];
        System.arraycopy(shape, 0, out, 0, s);
        long n = 1;
        for (int i = s; i <= e; i++) n *= shape[i];
        out[s] = n;
        System.arraycopy(shape, e + 1, out, s + 1, rank - e - 1);
        return input.reshape(out);
    }

    @Override
    protected String extraRepr() {
        return "start_dim=" + startDim + ", end_dim=" + endDim;
    }
}
