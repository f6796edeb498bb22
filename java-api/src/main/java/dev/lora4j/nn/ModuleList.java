package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Objects;

/**
 * Modules held in a list, as {@code nn.ModuleList}: children named "0", "1", ..., no forward of
 * its own (the owner decides how to call them, e.g. with extra arguments). {@link Sequential}
 * is the list that chains them.
 *
 * <p>Ownership and threads: as every {@link Module}.
 */
public class ModuleList extends Module {

    /** Appends a module; returns this. */
    public ModuleList add(Module module) {
        registerModule(Integer.toString(children().size()), Objects.requireNonNull(module, "module"));
        return this;
    }

    /** The i-th module (as it is now: model surgery may have replaced it). */
    public final Module get(int i) {
        return child(Integer.toString(i));
    }

    public final int size() {
        return children().size();
    }

    /** Always throws: a ModuleList has no forward, as in PyTorch. */
    @Override
    public Tensor forward(Tensor input) {
        throw new UnsupportedOperationException("ModuleList has no forward: call its modules");
    }
}
