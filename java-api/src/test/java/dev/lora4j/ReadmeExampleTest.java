package dev.lora4j;

import static dev.lora4j.nn.Functional.*;
import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/** The README's usage example, verbatim, plus a check that its SGD step lowered the loss. */
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
}
