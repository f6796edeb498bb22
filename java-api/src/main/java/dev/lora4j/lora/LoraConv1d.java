package dev.lora4j.lora;

import dev.lora4j.nn.Conv1d;

/**
 * LoRA around a {@link Conv1d}, as PEFT's {@code lora.Conv1d}; see {@link LoraConv} for the layout and merging.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraConv1d extends LoraConv {

    public LoraConv1d(Conv1d base, LoraConfig config) {
        super(base, config);
    }

    /** Wraps {@code base} with one adapter named {@code adapterName}. */
    public LoraConv1d(Conv1d base, String adapterName, LoraConfig config) {
        super(base, adapterName, config);
    }
}
