package dev.lora4j.internal;

import static dev.lora4j.bindings.LibLora4j.lt_layer_norm;
import static dev.lora4j.bindings.LibLora4j.lt_scaled_dot_product_attention;

import dev.lora4j.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The transformer building blocks as one native call each (shim {@code lt_layer_norm},
 * {@code lt_scaled_dot_product_attention}). Autograd-aware; results join the current scope.
 * Arguments are checked by the callers ({@code dev.lora4j.nn.Functional}).
 *
 * <p>Internal: not part of the API. Stateless, thread-safe.
 */
public final class TransformerOps {

    static {
        NativeLibrary.ensureLoaded();
    }

    private TransformerOps() {}

    private static final String[] ATTENTION_NAMES = {"query", "key", "value"};

    /** {@code F.layer_norm(input, normalizedShape, weight, bias, eps)}; weight and bias may be null. */
    public static Tensor layerNorm(Tensor input, long[] normalizedShape, Tensor weight, Tensor bias, double eps) {
        PerThread t = PerThread.get();
        MemorySegment hInput = Calls.pin(input, "input");
        try {
            MemorySegment hWeight = Calls.pinOrNull(weight);
            try {
                MemorySegment hBias = Calls.pinOrNull(bias);
                try {
                    Status.check(lt_layer_norm(hInput, t.longs(1, normalizedShape), normalizedShape.length, hWeight, hBias, eps, t.out0),
                            "layerNorm");
                } finally {
                    Calls.unpin(bias);
                }
            } finally {
                Calls.unpin(weight);
            }
        } finally {
            Calls.unpin(input);
        }
        return Calls.adopt(t, PerThread.address(t.out0));
    }

    /** {@code F.scaled_dot_product_attention(q, k, v, mask, dropoutP, isCausal)}; mask may be null. */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor mask, double dropoutP, boolean isCausal) {
        PerThread t = PerThread.get();
        Tensor[] operands = {q, k, v};
        MemorySegment[] h = Calls.pinAll(operands, ATTENTION_NAMES);
        try {
            MemorySegment hMask = Calls.pinOrNull(mask);
            try {
                Status.check(lt_scaled_dot_product_attention(h[0], h[1], h[2], hMask, dropoutP, isCausal ? 1 : 0, t.out0),
                        "scaledDotProductAttention");
            } finally {
                Calls.unpin(mask);
            }
        } finally {
            Calls.unpinAll(operands);
        }
        return Calls.adopt(t, PerThread.address(t.out0));
    }
}
