package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Set;

/**
 * Child modules by key, as PyTorch's {@code nn.ModuleDict}: a container whose members are
 * named {@code <key>.<member>} in the state dict ({@code lora_A.default.weight}). It has no
 * computation of its own.
 *
 * <p>Ownership: it owns its modules; {@link #put} closes the module it replaces,
 * {@link #remove} hands the removed one to the caller. Thread-safety as {@link Module}:
 * reading is safe from many threads, changes are single-threaded.
 */
public final class ModuleDict extends Module {

    /** Adds {@code module} under {@code key}, closing the module it replaces; returns it. */
    public <M extends Module> M put(String key, M module) {
        Module old = children().get(key);
        registerModule(key, module);
        if (old != null && old != module) old.close();
        return module;
    }

    /** The module under {@code key}. */
    public Module get(String key) {
        return child(key);
    }

    public boolean containsKey(String key) {
        return children().containsKey(key);
    }

    /** Removes the module under {@code key} and returns it, not closed (the caller owns it). */
    public Module remove(String key) {
        return removeModule(key);
    }

    /** The keys in insertion order. */
    public Set<String> keySet() {
        return children().keySet();
    }

    /** @throws UnsupportedOperationException always: a ModuleDict is not callable, as in PyTorch */
    @Override
    public Tensor forward(Tensor input) {
        throw new UnsupportedOperationException("ModuleDict has no forward: call one of its modules");
    }
}
