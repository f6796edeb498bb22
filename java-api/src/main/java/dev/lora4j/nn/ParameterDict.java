package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Map;
import java.util.Set;

/**
 * Parameters by key, as PyTorch's {@code nn.ParameterDict}: named {@code <key>} under the
 * container in the state dict ({@code lora_embedding_A.default}). It has no computation.
 *
 * <p>Ownership: it owns its tensors; {@link #put} takes ownership and closes the tensor it
 * replaces, {@link #remove} hands the removed tensor to the caller. Thread-safety as
 * {@link Module}.
 */
public final class ParameterDict extends Module {

    /** Adds {@code value} under {@code key} (taking ownership); returns it. */
    public Tensor put(String key, Tensor value) {
        return registerParameter(key, java.util.Objects.requireNonNull(value, "value"));
    }

    /** The tensor under {@code key}, owned by this container. */
    public Tensor get(String key) {
        return parameter(key);
    }

    public boolean containsKey(String key) {
        return hasParameter(key);
    }

    /** Removes the tensor under {@code key} and returns it, not closed (the caller owns it). */
    public Tensor remove(String key) {
        return removeParameter(key);
    }

    /** The keys in insertion order. */
    public Set<String> keySet() {
        Map<String, Tensor> own = new java.util.LinkedHashMap<>();
        namedParameters().forEach((k, v) -> {
            if (!k.contains(".")) own.put(k, v);
        });
        return own.keySet();
    }

    /** @throws UnsupportedOperationException always: a ParameterDict is not callable, as in PyTorch */
    @Override
    public Tensor forward(Tensor input) {
        throw new UnsupportedOperationException("ParameterDict has no forward: use its tensors");
    }
}
