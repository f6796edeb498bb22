package dev.lora4j.internal;

import static dev.lora4j.bindings.LibLora4j.lt_layer_norm;
import static dev.lora4j.bindings.LibLora4j.lt_scaled_dot_product_attention;

import dev.lora4j.Tensor;
import java.lang.ref.Reference;

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

    /** {@code F.layer_norm(input, normalizedShape, weight, bias, eps)}; weight and bias may be null. */
    public static Tensor layerNorm(Tensor input, long[] normalizedShape, Tensor weight, Tensor bias, double eps) {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_layer_norm(Calls.handle(input, "input"), t.longs(1, normalizedShape), normalizedShape.length,
                    Calls.handleOrNull(weight), Calls.handleOrNull(bias), eps, t.out0), "layerNorm");
            return Calls.adopt(t, PerThread.address(t.out0));
        } finally {
            Reference.reachabilityFence(input);
            Reference.reachabilityFence(weight);
            Reference.reachabilityFence(bias);
        }
    }

    /** {@code F.scaled_dot_product_attention(q, k, v, mask, dropoutP, isCausal)}; mask may be null. */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor mask, double dropoutP, boolean isCausal) {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_scaled_dot_product_attention(Calls.handle(q, "query"), Calls.handle(k, "key"),
                    Calls.handle(v, "value"), Calls.handleOrNull(mask), dropoutP, isCausal ? 1 : 0, t.out0),
                    "scaledDotProductAttention");
            return Calls.adopt(t, PerThread.address(t.out0));
        } finally {
            Reference.reachabilityFence(q);
            Reference.reachabilityFence(k);
            Reference.reachabilityFence(v);
            Reference.reachabilityFence(mask);
        }
    }
}
