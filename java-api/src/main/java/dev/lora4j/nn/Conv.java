package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Arrays;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

/**
 * An N-dimensional convolution (N = 1, 2, 3), the common part of {@link Conv1d},
 * {@link Conv2d} and {@link Conv3d}: weight (out, in/groups, *kernel), bias (out) or none,
 * initialised as PyTorch's {@code _ConvNd} (kaiming_uniform(a=√5), bias U(±1/√fan_in)).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public abstract class Conv extends Module {

    private final int spatialDims;
    private final long inChannels;
    private final long outChannels;
    private final long[] kernelSize;
    private final long[] stride;
    private final long[] padding;
    private final long[] dilation;
    private final long groups;

    protected Conv(int spatialDims, long inChannels, long outChannels, long[] kernelSize, long[] stride,
                   long[] padding, long[] dilation, long groups, boolean bias) {
        String name = "Conv" + spatialDims + "d";
        if (inChannels < 1 || outChannels < 1) throw new IllegalArgumentException(name + " needs channels >= 1");
        Functional.checkGroups(name, groups);
        if (inChannels % groups != 0 || outChannels % groups != 0) {
            throw new IllegalArgumentException(name + ": groups " + groups + " must divide in_channels " + inChannels
                    + " and out_channels " + outChannels);
        }
        this.spatialDims = spatialDims;
        this.inChannels = inChannels;
        this.outChannels = outChannels;
        this.kernelSize = check(name, "kernel_size", kernelSize, spatialDims, 1);
        this.stride = check(name, "stride", stride, spatialDims, 1);
        this.padding = check(name, "padding", padding, spatialDims, 0);
        this.dilation = check(name, "dilation", dilation, spatialDims, 1);
        this.groups = groups;
        long[] shape = new long[spatialDims + 2];
        shape[0] = outChannels;
        shape[1] = inChannels / groups;
        System.arraycopy(kernelSize, 0, shape, 2, spatialDims);
        registerParameter("weight", Init.kaimingUniform_(Tensor.empty(shape), Math.sqrt(5)).requiresGrad_(true));
        long fanIn = inChannels / groups * LongStream.of(kernelSize).reduce(1, (a, b) -> a * b);
        double bound = 1 / Math.sqrt(fanIn);
        registerParameter("bias", bias ? Init.uniform_(Tensor.empty(outChannels), -bound, bound).requiresGrad_(true) : null);
    }

    private static long[] check(String name, String what, long[] values, int n, long min) {
        Functional.checkLength(name, what, values, n, min);
        return values.clone();
    }

    static long[] repeat(int n, long v) {
        long[] a = new long[n];
        Arrays.fill(a, v);
        return a;
    }

    public int spatialDims() {
        return spatialDims;
    }

    public long inChannels() {
        return inChannels;
    }

    public long outChannels() {
        return outChannels;
    }

    public long[] kernelSize() {
        return kernelSize.clone();
    }

    public long[] stride() {
        return stride.clone();
    }

    public long[] padding() {
        return padding.clone();
    }

    public long[] dilation() {
        return dilation.clone();
    }

    public long groups() {
        return groups;
    }

    /** The stored weight (the original when parametrized); owned by the layer. */
    public Tensor weight() {
        return storedParameter("weight");
    }

    public Tensor bias() {
        return parameter("bias");
    }

    @Override
    public Tensor forward(Tensor input) {
        return withParameter("weight", w -> Functional.conv(spatialDims, input, w, bias(), stride, padding, dilation, groups));
    }

    @Override
    protected String extraRepr() {
        return inChannels + ", " + outChannels + ", kernel_size=" + tuple(kernelSize) + ", stride=" + tuple(stride)
                + (LongStream.of(padding).anyMatch(p -> p != 0) ? ", padding=" + tuple(padding) : "")
                + (LongStream.of(dilation).anyMatch(d -> d != 1) ? ", dilation=" + tuple(dilation) : "")
                + (groups != 1 ? ", groups=" + groups : "") + (bias() == null ? ", bias=False" : "");
    }

    private static String tuple(long[] v) {
        return LongStream.of(v).mapToObj(Long::toString).collect(Collectors.joining(", ", "(", v.length == 1 ? ",)" : ")"));
    }
}
