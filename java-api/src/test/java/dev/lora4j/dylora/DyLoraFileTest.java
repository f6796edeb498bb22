package dev.lora4j.dylora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.Safetensors;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A DyLoRA adapter is saved once (r_max factors) and loaded to serve at any rank. */
class DyLoraFileTest {

    @TempDir
    Path dir;

    private static Sequential model() {
        return new Sequential(new Linear(6, 5), Activation.relu(), new Linear(5, 3));
    }

    @Test
    void saveOnceLoadAtAnyRank() throws Exception {
        Torch.manualSeed(9);
        Path file = dir.resolve("adapter.safetensors");
        try (TensorScope s = TensorScope.open(); Sequential trained = model(); Sequential served = model()) {
            served.loadStateDict(trained.stateDict(), true); // same base weights
            DyLora.wrap(trained, LoraConfig.of(4, 4));
            for (var l : Lora.loraLayers(trained).values()) {
                try (var ng = Torch.noGrad()) {
                    ((DyLoraLinear) l).loraB().copy_(Tensor.randn(((DyLoraLinear) l).loraB().shape()));
                }
            }
            Map<String, Tensor> adapter = Lora.loraStateDict(trained, LoraConfig.Bias.NONE);
            assertEquals(List.of("0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"), List.copyOf(adapter.keySet()));
            assertArrayEquals(new long[] {4, 6}, adapter.get("0.lora_A").shape(), "r_max rows, saved once");
            Safetensors.write(file, adapter, Map.of("format", "pt", "r_max", "4"));

            DyLora.wrap(served, LoraConfig.of(4, 4));
            try (Safetensors.Contents c = Safetensors.read(file)) {
                var result = served.loadStateDict(c.tensors(), false);
                assertTrue(result.unexpectedKeys().isEmpty());
                assertTrue(result.missingKeys().stream().noneMatch(k -> k.contains("lora_")));
            }
            trained.eval();
            served.eval();
            Tensor x = Tensor.randn(7, 6);
            for (int b = 1; b <= 4; b++) {
                DyLora.setRank(trained, b);
                DyLora.setRank(served, b);
                assertTrue(served.forward(x).equal(trained.forward(x)), "rank " + b);
            }
        }
    }
}
