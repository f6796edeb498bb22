package dev.lora4j.nn;

/**
 * 3-d convolution, as {@code nn.Conv3d}. See {@link Conv}.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Conv3d extends Conv {

    /** Same kernel size, stride, padding and dilation in every dimension. */
    public Conv3d(long inChannels, long outChannels, long kernelSize, long stride, long padding, long dilation,
                  long groups, boolean bias) {
        super(3, inChannels, outChannels, repeat(3, kernelSize), repeat(3, stride), repeat(3, padding),
                repeat(3, dilation), groups, bias);
    }

    public Conv3d(long inChannels, long outChannels, long kernelSize) {
        this(inChannels, outChannels, kernelSize, 1, 0, 1, 1, true);
    }

    /** Per-dimension kernel size, stride, padding and dilation (3 values each). */
    public Conv3d(long inChannels, long outChannels, long[] kernelSize, long[] stride, long[] padding, long[] dilation,
                  long groups, boolean bias) {
        super(3, inChannels, outChannels, kernelSize, stride, padding, dilation, groups, bias);
    }
}
