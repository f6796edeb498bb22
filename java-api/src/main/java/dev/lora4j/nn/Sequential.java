package dev.lora4j.nn;

import dev.lora4j.Tensor;
import java.util.Objects;

/**
 * Modules applied in order, as {@code nn.Sequential}; children are named "0", "1", ...
 * Intermediate outputs are freed as soon as the next module has consumed them.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class Sequential extends ModuleList {

    public Sequential(Module... modules) {
        Objects.requireNonNull(modules, "modules");
        for (Module m : modules) add(m);
    }

    /** Appends a module; returns this. */
    @Override
    public final Sequential add(Module module) {
        super.add(module);
        return this;
    }

    @Override
    public Tensor forward(Tensor input) {
        Tensor x = input;
        for (Module m : children().values()) {
            Tensor next = m.forward(x);
            if (x != input) x.close();
            x = next;
        }
        return x == input ? input.alias() : x;
    }
}
