package dev.lora4j.internal;

import static dev.lora4j.bindings.LibLora4j.lt_lora_add_delta;
import static dev.lora4j.bindings.LibLora4j.lt_lora_linear;

import dev.lora4j.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The LoRA linear forward as one native call each (shim {@code lt_lora_linear},
 * {@code lt_lora_add_delta}): the low-rank update is one {@code addmm} into the base result, so
 * a forward costs one downcall and three ATen ops instead of five downcalls, five ops and three
 * intermediate tensors. Autograd-aware: results carry a graph for backward exactly like the
 * separate operations; only dropout is not part of it (callers with dropout on keep the unfused
 * path). Results follow the usual ownership rules (they join the current scope).
 *
 * <p>Internal: for {@code dev.lora4j.lora}'s layers, not part of the API. Stateless, thread-safe.
 */
public final class LoraOps {

    static {
        NativeLibrary.ensureLoaded();
    }

    private static final String[] LINEAR_NAMES = {"input", "weight", "loraA", "loraB"};
    private static final String[] ADD_DELTA_NAMES = {"base", "input", "loraA", "loraB"};

    private LoraOps() {}

    /**
     * {@code x·wᵀ + bias + scale·(x·aᵀ)·bᵀ}: w (out, in), bias (out) or null, a (r, in),
     * b (out, r), x (..., in).
     */
    public static Tensor linear(Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, double scale) {
        PerThread t = PerThread.get();
        Tensor[] operands = {x, w, a, b};
        MemorySegment[] h = Calls.pinAll(operands, LINEAR_NAMES);
        try {
            MemorySegment hBias = Calls.pinOrNull(bias);
            try {
                Status.check(lt_lora_linear(h[0], h[1], hBias, h[2], h[3], scale, t.out0), "loraLinear");
            } finally {
                Calls.unpin(bias);
            }
        } finally {
            Calls.unpinAll(operands);
        }
        return Calls.adopt(t, PerThread.address(t.out0));
    }

    /** {@code y + scale·(x·aᵀ)·bᵀ}: y (..., out), x (..., in) with y's leading shape, a (r, in), b (out, r). */
    public static Tensor addDelta(Tensor y, Tensor x, Tensor a, Tensor b, double scale) {
        PerThread t = PerThread.get();
        Tensor[] operands = {y, x, a, b};
        MemorySegment[] h = Calls.pinAll(operands, ADD_DELTA_NAMES);
        try {
            Status.check(lt_lora_add_delta(h[0], h[1], h[2], h[3], scale, t.out0), "loraAddDelta");
        } finally {
            Calls.unpinAll(operands);
        }
        return Calls.adopt(t, PerThread.address(t.out0));
    }
}
