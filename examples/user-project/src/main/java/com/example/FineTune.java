package com.example;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.data.Batch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;

public class FineTune {
    @SuppressWarnings("try") // the TensorScope is used for what it frees, not by name
    public static void main(String[] args) {
        Torch.manualSeed(0);
        long[] labels = new long[256];
        for (int i = 0; i < labels.length; i++) labels[i] = i % 10;
        try (TensorDataset data = new TensorDataset(Tensor.randn(256, 784), Tensor.of(labels, 256));
             Sequential model = new Sequential(new Linear(784, 256), Activation.relu(), new Linear(256, 10))) {
            Lora.WrapReport report = Lora.wrap(model, LoraConfig.of(8, 16).withTargetModules("all-linear"));
            System.out.println("LoRA on layers " + report.wrapped() + ", trainable: " + model.trainableParameterCount());
            try (AdamW opt = new AdamW(model.trainableParameters(), 1e-3)) {
                for (int epoch = 0; epoch < 3; epoch++) {
                    for (Batch b : data.loader(32, true, 0, false)) {
                        try (b; TensorScope scope = TensorScope.open()) {     // frees every temporary
                            opt.zeroGrad();
                            crossEntropy(model.forward(b.inputs()), b.targets()).backward();
                            opt.step();
                        }
                    }
                }
            }
            Lora.mergeAndUnload(model, true);                  // plain Linear layers again, ΔW merged
            System.out.println("merged: " + model.parameterCount() + " parameters, LibTorch " + Torch.version());
        }
    }
}
