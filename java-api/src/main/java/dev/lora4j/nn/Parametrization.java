package dev.lora4j.nn;

import dev.lora4j.Tensor;

/**
 * A module that computes a parameter's value from its original, as the modules given to
 * PyTorch's {@code register_parametrization}: {@code forward(original)} returns the value
 * layers see. The returned tensor belongs to the caller; it must not be the original itself
 * (return {@code original.alias()} for an identity).
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public abstract class Parametrization extends Module {
}
