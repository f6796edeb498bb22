package dev.lora4j.nn;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.Tensor;
import dev.lora4j.internal.Calls;

/**
 * In-place initialisers, as PyTorch's {@code torch.nn.init}. They run without recording
 * gradients and draw from LibTorch's generator ({@link dev.lora4j.Torch#manualSeed}).
 * Each returns its argument. Not safe to call on a tensor another thread is using.
 */
public final class Init {

    private Init() {}

    /** {@code kaiming_uniform_(t, a)} with mode fan_in and leaky_relu gain, PyTorch's Linear default. */
    public static Tensor kaimingUniform_(Tensor t, double a) {
        Calls.inPlace("kaimingUniform_", t, h -> lt_kaiming_uniform_(h, a));
        return t;
    }

    public static Tensor normal_(Tensor t, double mean, double std) {
        if (!(std >= 0)) throw new IllegalArgumentException("std must be >= 0, got " + std);
        Calls.inPlace("normal_", t, h -> lt_normal_(h, mean, std));
        return t;
    }

    public static Tensor uniform_(Tensor t, double from, double to) {
        if (!(from <= to)) throw new IllegalArgumentException("uniform_ needs from <= to, got " + from + " > " + to);
        Calls.inPlace("uniform_", t, h -> lt_uniform_(h, from, to));
        return t;
    }

    public static Tensor zeros_(Tensor t) {
        Calls.inPlace("zeros_", t, h -> lt_zeros_(h));
        return t;
    }
}
