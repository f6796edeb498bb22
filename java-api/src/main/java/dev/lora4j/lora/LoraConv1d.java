package dev.lora4j.lora;

import dev.lora4j.nn.Conv1d;

/** LoRA around a {@link Conv1d}, as PEFT's {@code lora.Conv1d}; see {@link LoraConv} for the layout and merging. */
public class LoraConv1d extends LoraConv {

    public LoraConv1d(Conv1d base, LoraConfig config) {
        super(base, config);
    }
}
