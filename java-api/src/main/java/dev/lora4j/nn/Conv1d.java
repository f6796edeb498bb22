package dev.lora4j.nn;

/** 1-d convolution, as {@code nn.Conv1d}. See {@link Conv}. */
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
