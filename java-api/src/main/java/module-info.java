/**
 * lora4j: LoRA fine-tuning and serving on native LibTorch through the FFM API. Tensors and
 * autograd ({@code dev.lora4j}), layers ({@code nn}), LoRA and DyLoRA, optimizers, adapter and
 * tensor files ({@code io}), data loading. {@code dev.lora4j.internal} is not exported.
 *
 * <p>Run with {@code --enable-native-access=dev.lora4j,dev.lora4j.bindings}. The native shim comes
 * from a {@code lora4j-native} jar (an automatic module: keep it on the class path, or add it with
 * {@code --add-modules}).
 */
module dev.lora4j {
    requires dev.lora4j.bindings;
    requires com.fasterxml.jackson.databind;

    exports dev.lora4j;
    exports dev.lora4j.data;
    exports dev.lora4j.distributed;
    exports dev.lora4j.dylora;
    exports dev.lora4j.io;
    exports dev.lora4j.hf;
    exports dev.lora4j.lora;
    exports dev.lora4j.models.bert;
    exports dev.lora4j.nn;
    exports dev.lora4j.optim;
}
