package dev.lora4j.examples.serve;

import dev.lora4j.nn.Linear;

/**
 * A linear layer whose weight and bias are new handles on another layer's tensors (same
 * storage, no copy), so that a DyLoRA adapter's model can wrap the served base model's layers
 * without duplicating its weights. Closing it frees only its handles; the other layer's
 * tensors live on. Neither layer may change the weights (the served base is frozen).
 */
final class SharedLinear extends Linear {

    SharedLinear(Linear base) {
        super(base.inFeatures(), base.outFeatures(), base.bias() != null);
        // Replaces (and frees) the freshly initialised tensors by aliases of the base layer's.
        registerParameter("weight", base.weight().alias().requiresGrad_(false));
        if (base.bias() != null) registerParameter("bias", base.bias().alias().requiresGrad_(false));
    }
}
