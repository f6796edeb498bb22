package dev.lora4j;

import static dev.lora4j.nn.Functional.*;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.data.Batch;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.AdamW;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The README's usage examples, verbatim, plus checks that they did what they say. */
class ReadmeExampleTest {

    @Test
    void readmeExampleRunsAndItsStepLowersTheLoss() {
        Torch.manualSeed(0);
        try (TensorScope scope = TensorScope.open()) {          // frees every temporary below
            Tensor w = Tensor.randn(10, 784).requiresGrad_(true);
            Tensor x = Tensor.randn(32, 784);
            Tensor target = Tensor.of(new long[32], 32);
            Tensor loss = crossEntropy(linear(x, w, null), target);
            loss.backward();
            try (var noGrad = Torch.noGrad()) {
                w.add_(w.grad(), -0.1);                             // an SGD step
            }
            double after = crossEntropy(linear(x, w, null), target).item();
            assertTrue(after < loss.item(), after + " < " + loss.item());
        }
    }

    @Test
    void readmeLoraExampleTrainsOnlyTheAdaptersAndUnloadsToPlainLayers() {
        Torch.manualSeed(0);
        long[] labels = new long[64];
        for (int i = 0; i < labels.length; i++) labels[i] = i % 10;
        try (TensorDataset data = new TensorDataset(Tensor.randn(64, 784), Tensor.of(labels, 64))) {
            try (Sequential model = new Sequential(new Linear(784, 256), Activation.relu(), new Linear(256, 10))) {
                Lora.WrapReport report = Lora.wrap(model, LoraConfig.of(8, 16).withTargetModules("all-linear"));
                assertEquals(List.of("0", "2"), report.wrapped());
                assertEquals(8L * (784 + 256) + 8L * (256 + 10), model.trainableParameterCount());
                try (AdamW opt = new AdamW(model.trainableParameters(), 1e-3)) {
                    for (Batch b : data.loader(32, true, 0, false)) {
                        try (b; TensorScope s = TensorScope.open()) {
                            opt.zeroGrad();
                            crossEntropy(model.forward(b.inputs()), b.targets()).backward();
                            opt.step();
                        }
                    }
                }
                Lora.mergeAndUnload(model, true);                       // plain Linear layers again, ΔW merged
                assertInstanceOf(Linear.class, model.get(0));
                assertEquals(784L * 256 + 256 + 256 * 10 + 10, model.parameterCount());
            }
        }
    }
}
