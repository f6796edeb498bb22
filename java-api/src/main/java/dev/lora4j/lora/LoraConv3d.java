package dev.lora4j.lora;

import dev.lora4j.nn.Conv3d;

/**
 * LoRA around a {@link Conv3d}, as PEFT's {@code lora.Conv3d}; see {@link LoraConv} for the layout and merging.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraConv3d extends LoraConv {

    public LoraConv3d(Conv3d base, LoraConfig config) {
        super(base, config);
    }

    /** Wraps {@code base} with one adapter named {@code adapterName}. */
    public LoraConv3d(Conv3d base, String adapterName, LoraConfig config) {
        super(base, adapterName, config);
    }
}
