package dev.lora4j.nn;

/**
 * 2-d convolution, as {@code nn.Conv2d}. See {@link Conv}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Conv2d extends Conv {

    /** Same kernel size, stride, padding and dilation in every dimension. */
    public Conv2d(long inChannels, long outChannels, long kernelSize, long stride, long padding, long dilation,
                  long groups, boolean bias) {
        super(2, inChannels, outChannels, repeat(2, kernelSize), repeat(2, stride), repeat(2, padding),
                repeat(2, dilation), groups, bias);
    }

    public Conv2d(long inChannels, long outChannels, long kernelSize) {
        this(inChannels, outChannels, kernelSize, 1, 0, 1, 1, true);
    }

    /** Per-dimension kernel size, stride, padding and dilation (2 values each). */
    public Conv2d(long inChannels, long outChannels, long[] kernelSize, long[] stride, long[] padding, long[] dilation,
                  long groups, boolean bias) {
        super(2, inChannels, outChannels, kernelSize, stride, padding, dilation, groups, bias);
    }
}
