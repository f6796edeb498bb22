package dev.lora4j.lora;

import dev.lora4j.nn.Conv2d;

/** LoRA around a {@link Conv2d}, as PEFT's {@code lora.Conv2d}; see {@link LoraConv} for the layout and merging. */
public class LoraConv2d extends LoraConv {

    public LoraConv2d(Conv2d base, LoraConfig config) {
        super(base, config);
    }
}
