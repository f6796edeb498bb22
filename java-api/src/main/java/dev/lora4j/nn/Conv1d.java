package dev.lora4j.nn;

/**
 * 1-d convolution, as {@code nn.Conv1d}. See {@link Conv}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Conv1d extends Conv {

    /** Same kernel size, stride, padding and dilation in every dimension. */
    public Conv1d(long inChannels, long outChannels, long kernelSize, long stride, long padding, long dilation,
                  long groups, boolean bias) {
        super(1, inChannels, outChannels, repeat(1, kernelSize), repeat(1, stride), repeat(1, padding),
                repeat(1, dilation), groups, bias);
    }

    public Conv1d(long inChannels, long outChannels, long kernelSize) {
        this(inChannels, outChannels, kernelSize, 1, 0, 1, 1, true);
    }

    /** Per-dimension kernel size, stride, padding and dilation (1 values each). */
    public Conv1d(long inChannels, long outChannels, long[] kernelSize, long[] stride, long[] padding, long[] dilation,
                  long groups, boolean bias) {
        super(1, inChannels, outChannels, kernelSize, stride, padding, dilation, groups, bias);
    }
}
