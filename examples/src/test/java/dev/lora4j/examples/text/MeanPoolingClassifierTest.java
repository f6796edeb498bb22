package dev.lora4j.examples.text;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The classifier's embeddings skip the padding (the encoder on real tokens only) and are what the
 * padded forward pools to; the encoder it is given keeps its own setting.
 */
class MeanPoolingClassifierTest {

    private static final BertConfig TINY = new BertConfig(50, 16, 2, 4, 32, "gelu", 0.1, 0.1, 20, 2, 1e-12, 0,
            List.of("BertModel"), 3, null);

    @Test
    void embeddingsOfAPaddedBatchAreThePaddedForwardsAndTheEncoderKeepsItsSetting() {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad();
                MeanPoolingClassifier c = new MeanPoolingClassifier(new BertModel(TINY, false), 3)) {
            c.eval();
            assertFalse(c.bert().skipsPadding(), "the classifier must not change its encoder's setting");
            Tensor ids = Tensor.of(new long[] {2, 8, 13, 0, 0, 4, 6, 7, 9, 11}, 2, 5);
            Tensor mask = Tensor.of(new long[] {1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, 2, 5);
            Tensor padded = SentenceEmbeddings.meanPooling(c.bert().forward(ids, mask, null, false), mask);
            assertTrue(c.embed(ids, mask).allclose(padded, 1e-5, 1e-6));
            // the real tokens only: the skipping forward's padded positions are zero, the padded forward's are not
            Tensor skipped = c.bert().forward(ids, mask, null, true);
            assertEquals(0.0, skipped.narrow(0, 0, 1).narrow(1, 3, 2).abs().sum().item(), 0.0);
            assertNotEquals(0.0, c.bert().forward(ids, mask, null, false).narrow(0, 0, 1).narrow(1, 3, 2).abs().sum().item());
            assertFalse(c.bert().skipsPadding());
        }
    }
}
