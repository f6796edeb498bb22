package dev.lora4j.models.bert;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Functional;
import dev.lora4j.nn.PackedTokens;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link BertModel#skipPadding}: the encoder on the real tokens alone gives the padded forward's
 * values at every real position and zeros at the padded ones, and the same gradients for every
 * parameter (float64, to rounding) for a loss that pools with the mask; {@link PackedTokens}'s
 * layout checked against plain Java.
 */
@ExtendWith(ScopePerTest.class)
class BertSkipPaddingTest {

    private static final long[] IDS = {2, 8, 13, 0, 0, 4, 6, 7, 9, 11, 5, 0, 0, 0, 0};
    private static final long[] MASK = {1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};

    /** The loss of a sentence-embedding fine-tune, and every parameter's gradient after it. */
    private static Map<String, double[]> lossAndGradients(BertModel m, Tensor ids, Tensor mask, Tensor target) {
        m.namedParameters().values().forEach(p -> p.zeroGrad());
        Tensor loss = Functional.mseLoss(SentenceEmbeddings.meanPooling(m.forward(ids, mask, null), mask), target);
        loss.backward();
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put("loss", loss.toDoubleArray());
        m.namedParameters().forEach((k, p) -> {
            if (p.requiresGrad()) out.put(k, p.grad() == null ? new double[0] : p.grad().toDoubleArray());
        });
        return out;
    }

    @Test
    void realPositionsAndEveryGradientAreThePaddedForwardsAndPaddingIsZero() {
        try (BertModel m = new BertModel(BertModelTest.TINY, false)) {
            m.to(DType.FLOAT64).eval();
            Lora.wrap(m, LoraConfig.of(2, 4).withTargetModules("query", "value"));
            m.namedParameters().forEach((k, p) -> {
                if (k.endsWith("lora_B.weight")) p.copy_(Tensor.randn(p.shape()).to(DType.FLOAT64)); // B = 0 would hide A's gradient
            });
            for (Tensor p : m.parameters()) p.requiresGrad_(true); // the base's gradients too: every layer's path
            Tensor ids = Tensor.of(IDS, 3, 5), mask = Tensor.of(MASK, 3, 5);
            Tensor target = Tensor.randn(3, 16).to(DType.FLOAT64);

            double[] padded = m.forward(ids, mask, null).detach().toDoubleArray();
            Map<String, double[]> expected = lossAndGradients(m, ids, mask, target);
            assertTrue(m.skipPadding(true).skipsPadding());
            double[] skipped = m.forward(ids, mask, null).detach().toDoubleArray();
            Map<String, double[]> got = lossAndGradients(m, ids, mask, target);

            for (int t = 0; t < MASK.length; t++) {
                for (int d = 0; d < 16; d++) {
                    int i = t * 16 + d;
                    if (MASK[t] == 1) assertEquals(padded[i], skipped[i], 1e-12, "token " + t + " dim " + d);
                    else assertEquals(0.0, skipped[i], "padded token " + t + " must be zero");
                }
            }
            assertEquals(expected.keySet(), got.keySet());
            int nonzero = 0;
            for (String k : expected.keySet()) {
                assertArrayEquals(expected.get(k), got.get(k), 1e-12, k);
                for (double g : expected.get(k)) if (g != 0) { nonzero++; break; }
            }
            assertTrue(nonzero > expected.size() / 2, "most parameters must get a gradient, " + nonzero + " of " + expected.size());
        }
    }

    /**
     * A mixed batch (each row its own adapter) gives each token its row's adapter when the
     * encoder runs packed: masks with as many real tokens as rows (a row of two tokens next to
     * a row of none, where giving token k the adapter of row k would pass unnoticed) and with
     * more tokens than rows.
     */
    @Test
    void aMixedBatchGivesEveryTokenItsRowsAdapter() {
        try (BertModel m = new BertModel(BertModelTest.TINY, false)) {
            Lora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "value"));
            Lora.deleteAdapter(m, "default");
            Lora.addAdapter(m, "a", LoraConfig.of(4, 8).withTargetModules("query", "value"));
            Lora.addAdapter(m, "b", LoraConfig.of(2, 2).withTargetModules("value", "intermediate.dense"));
            BertLoraTest.randomizeAll(m);
            m.eval();
            String[] rows = {"a", AdapterBank.BASE, "b"};
            long[][] masks = {{1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, {1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1}};
            Tensor ids = Tensor.of(new long[] {2, 8, 13, 4, 6, 7, 9, 11, 3, 5, 12, 14}, 3, 4);
            for (long[] mv : masks) {
                Tensor mask = Tensor.of(mv, 3, 4);
                float[] padded = Lora.withRowAdapters(m, 3, () -> m.skipPadding(false).forward(ids, mask, null), rows).toFloatArray();
                float[] skipped = Lora.withRowAdapters(m, 3, () -> m.skipPadding(true).forward(ids, mask, null), rows).toFloatArray();
                for (int t = 0; t < mv.length; t++) {
                    for (int d = 0; d < 16; d++) {
                        float want = mv[t] == 1 ? padded[t * 16 + d] : 0f;
                        assertEquals(want, skipped[t * 16 + d], 1e-5, "mask " + java.util.Arrays.toString(mv) + ", token " + t);
                    }
                }
            }
        }
    }

    /** The packed encoder called directly (not through BertModel) spreads a mixed batch per token too. */
    @Test
    void theEncodersPackedForwardCalledDirectlyGivesEveryTokenItsRowsAdapter() {
        try (BertModel m = new BertModel(BertModelTest.TINY, false)) {
            Lora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "value", "output.dense"));
            Lora.deleteAdapter(m, "default");
            Lora.addAdapter(m, "a", LoraConfig.of(4, 8).withTargetModules("query", "value", "output.dense"));
            BertLoraTest.randomizeAll(m);
            m.eval();
            String[] rows = {"a", AdapterBank.BASE, AdapterBank.BASE};
            long[] mv = {1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}; // 3 real tokens for 3 rows
            Tensor ids = Tensor.of(new long[] {2, 8, 13, 4, 6, 7, 9, 11, 3, 5, 12, 14}, 3, 4), mask = Tensor.of(mv, 3, 4);
            Tensor h = ((BertEmbeddings) m.child("embeddings")).forward(ids, null);
            Tensor ext = BertModel.extendedMask(mask, ids, h.dtype());
            BertEncoder encoder = (BertEncoder) m.child("encoder");
            try (PackedTokens layout = PackedTokens.of(mask)) {
                float[] packed = Lora.withRowAdapters(m, 3, () -> encoder.forward(layout.pack(h), ext, layout), rows).toFloatArray();
                float[] padded = Lora.withRowAdapters(m, 3, () -> encoder.forward(h, ext), rows).toFloatArray();
                int k = 0;
                for (int t = 0; t < mv.length; t++) {
                    if (mv[t] == 0) continue;
                    for (int d = 0; d < 16; d++) assertEquals(padded[t * 16 + d], packed[k * 16 + d], 1e-5, "token " + t);
                    k++;
                }
                // Per-row values of another batch size inside a packed run are refused, never applied per token.
                var e = assertThrows(IllegalArgumentException.class, () -> layout.run(() -> PackedTokens.spreadRows(new String[2], 3)));
                assertTrue(e.getMessage().contains("packed batch of 3 rows"), e.getMessage());
                // Packed attention of a padded batch without the mask would attend to the padding.
                var self = (dev.lora4j.nn.MultiHeadSelfAttention) m.child("encoder").child("layer").child("0").child("attention").child("self");
                e = assertThrows(IllegalArgumentException.class, () -> self.forward(layout.pack(h), null, layout));
                assertTrue(e.getMessage().contains("need the mask"), e.getMessage());
            }
        }
    }

    /** The pooler reads position 0: a classifier skips the padding only when it is real in every row. */
    @Test
    void aClassifierGivesTheSameLogitsWithLeftOrRightPadding() {
        try (var c = new BertForSequenceClassification(BertModelTest.TINY); var ng = Torch.noGrad()) {
            c.eval();
            Tensor ids = Tensor.of(new long[] {0, 0, 8, 13, 2, 8, 13, 0}, 2, 4);
            for (long[] mv : new long[][] {{0, 0, 1, 1, 1, 1, 1, 0}, {1, 1, 0, 0, 1, 1, 1, 0}}) {
                Tensor mask = Tensor.of(mv, 2, 4);
                c.bert().skipPadding(false);
                Tensor plain = c.forward(ids, mask, null);
                c.bert().skipPadding(true);
                assertTrue(c.forward(ids, mask, null).allclose(plain, 1e-5, 1e-5), java.util.Arrays.toString(mv));
            }
        }
    }

    @Test
    void aMaskOfOtherValuesThanZeroAndOneIsRefusedWhenPacking() {
        var e = assertThrows(IllegalArgumentException.class, () -> PackedTokens.of(Tensor.of(new long[] {1, 2, 0}, 1, 3)));
        assertTrue(e.getMessage().contains("got 2.0 at row 0, position 1"), e.getMessage());
    }

    @Test
    void aBatchWithoutPaddingOrWithoutRealTokensTakesThePaddedPathBitForBit() {
        try (BertModel m = new BertModel(BertModelTest.TINY, false); var ng = Torch.noGrad()) {
            m.eval();
            Tensor ids = Tensor.of(new long[] {2, 8, 13, 4, 6, 7}, 2, 3), mask = Tensor.ones(DType.INT64, 2, 3);
            Tensor plain = m.forward(ids, mask, null);
            assertTrue(m.skipPadding(true).forward(ids, mask, null).equal(plain));
            // nor one without a single real token
            Tensor none = Tensor.zeros(DType.INT64, 2, 3);
            Tensor padded = m.skipPadding(false).forward(ids, none, null);
            assertTrue(m.skipPadding(true).forward(ids, none, null).equal(padded));
        }
    }

    @Test
    void packedTokensKeepTheRealPositionsInOrderAndPutZerosBack() {
        Tensor mask = Tensor.of(MASK, 3, 5);
        try (PackedTokens p = PackedTokens.of(mask)) {
            assertEquals(9, p.tokens());
            assertTrue(p.hasPadding());
            Tensor x = Tensor.arange(3 * 5 * 2).to(DType.FLOAT32).view(3, 5, 2);
            Tensor packed = p.pack(x);
            assertArrayEquals(new long[] {9, 2}, packed.shape());
            float[] pv = packed.toFloatArray();
            int k = 0;
            for (int t = 0; t < 15; t++) {
                if (MASK[t] == 0) continue;
                assertEquals(2 * t, pv[2 * k], "token " + t);
                assertEquals(2 * t + 1, pv[2 * k + 1]);
                k++;
            }
            float[] back = p.unpack(packed).toFloatArray();
            for (int t = 0; t < 15; t++) {
                assertEquals(MASK[t] == 1 ? 2 * t : 0, back[2 * t]);
                assertEquals(MASK[t] == 1 ? 2 * t + 1 : 0, back[2 * t + 1]);
            }
            var e = assertThrows(IllegalArgumentException.class, () -> p.pack(Tensor.zeros(3, 4, 2)));
            assertTrue(e.getMessage().contains("(3, 5, ...)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> p.unpack(Tensor.zeros(6, 2)));
            assertTrue(e.getMessage().contains("(9, ...)"), e.getMessage());
        }
        var e = assertThrows(IllegalArgumentException.class, () -> PackedTokens.of(Tensor.ones(3)));
        assertTrue(e.getMessage().contains("(batch, seq)"), e.getMessage());
    }
}
