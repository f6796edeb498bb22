package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving and loading a PEFT folder with {@code modules_to_save} outside any tensor scope, as a
 * service does: nothing is left for the safety net (no tensor that no scope or module owns
 * stays alive). Deliberately without {@code ScopePerTest}, whose scope would own such leftovers.
 */
class PeftLoadOwnershipTest {

    @TempDir
    Path dir;

    @Test
    void saveAndLoadWithModulesToSaveLeaveNoUnownedTensor() throws Exception {
        LoraConfig cfg = LoraConfig.of(8, 16).withTargetModules("query", "value");
        try (var c = new BertForSequenceClassification(BertModelTest.TINY); var fresh = new BertForSequenceClassification(BertModelTest.TINY)) {
            Lora.wrap(c, cfg);
            long before = Torch.unownedTensorBytes();
            PeftAdapter.save(c, "default", cfg, List.of("classifier"), dir);
            assertEquals(before, Torch.unownedTensorBytes(), "save left unowned tensors");
            PeftAdapter.load(fresh, dir);
            assertEquals(before, Torch.unownedTensorBytes(), "load left unowned tensors");
            Lora.deleteAdapter(fresh, "default");
            PeftAdapter.load(fresh, dir, "default", true);
            assertEquals(before, Torch.unownedTensorBytes(), "a trainable load left unowned tensors");
        }
    }
}
