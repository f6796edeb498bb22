package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A checkpoint folder saved while others save into it and load from it: every load gets the
 * config and the weights of one save (never one save's config with another's weights), and
 * concurrent saves neither fail nor leave a torn file.
 */
@ExtendWith(ScopePerTest.class)
class BertCheckpointRaceTest {

    @TempDir
    Path dir;

    /** Two checkpoints told apart by hidden_dropout_prob (config) and the word embeddings' value (weights). */
    static BertConfig config(int variant) {
        return new BertConfig(50, 16, 1, 4, 32, "gelu", variant == 0 ? 0.1 : 0.2, 0.1, 20, 2, 1e-12, 0, List.of("BertModel"), 3, null);
    }

    static BertModel model(int variant) {
        BertModel m = new BertModel(config(variant), false);
        try (Tensor w = m.stateDict().get("embeddings.word_embeddings.weight")) {
            w.fill_(variant + 1);
        }
        return m;
    }

    @Test
    void loadsNeverPairOneSavesConfigWithAnothersWeightsAndConcurrentSavesDoNotCollide() throws Exception {
        BertModel[] models = {model(0), model(1)};
        try {
            BertLoader.save(models[0], config(0), dir);
            var failures = new ConcurrentLinkedQueue<Throwable>();
            var stop = new AtomicBoolean();
            Runnable saver = () -> {
                try {
                    for (int i = 0; i < 40 && !stop.get(); i++) BertLoader.save(models[i % 2], config(i % 2), dir);
                } catch (Throwable t) {
                    failures.add(t);
                }
            };
            Thread[] savers = {new Thread(saver), new Thread(saver)};
            for (Thread t : savers) t.start();
            int loads = 0;
            while (savers[0].isAlive() || savers[1].isAlive() || loads < 20) {
                try (BertModel back = BertLoader.bertModel(dir)) {
                    double word = back.stateDict().get("embeddings.word_embeddings.weight").toFloatArray()[0];
                    int variant = back.config().hiddenDropoutProb() == 0.1 ? 0 : 1;
                    assertEquals(variant + 1, word, 0, "load " + loads + ": the config of one save with the weights of another");
                } catch (AssertionError e) {
                    stop.set(true);
                    throw e;
                }
                loads++;
            }
            for (Thread t : savers) t.join();
            assertTrue(failures.isEmpty(), () -> "concurrent saves failed: " + failures);
        } finally {
            for (BertModel m : models) m.close();
        }
    }
}
