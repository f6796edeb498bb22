package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.nn.HfConv1D;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Mixed batches of 3-d (and n-d) inputs: every row of a [batch, seq, hidden] batch through a
 * small BERT equals that row run alone with its adapter, rows without an adapter (padding rows
 * included) equal the base model, and the batch went through the fused kernel (one call per
 * LoRA layer, no per-adapter loop), for every input dtype and weight layout the bank serves.
 */
class MixedEncoderBatchTest {

    private static final BertConfig SMALL = BertConfig.of(40, 24, 2, 4, 48);
    private static final String BASE = AdapterBank.BASE;
    /** Row 5 is a padding row: only [CLS] is a token. */
    private static final String[] ROWS = {"b", BASE, "a", "c", "a", BASE};
    private static final long[] IDS = {2, 8, 13, 0, 0, 4, 6, 7, 9, 11, 3, 3, 5, 0, 0, 1, 9, 9, 9, 2, 7, 7, 1, 5, 6, 2, 0, 0, 0, 0};
    private static final long[] MASK = {1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};

    /** A BERT with adapters a (query, value), b (value, intermediate.dense; rsLoRA) and c (query) of ranks 4, 2, 3. */
    private static BertModel encoder(long seed) {
        Torch.manualSeed(seed);
        BertModel m = new BertModel(SMALL, false);
        Lora.wrap(m, LoraConfig.of(4, 8).withTargetModules("query", "value"));
        Lora.deleteAdapter(m, "default");
        Lora.addAdapter(m, "a", LoraConfig.of(4, 8).withTargetModules("query", "value"));
        Lora.addAdapter(m, "b", LoraConfig.of(2, 2).withRslora(true).withTargetModules("value", "intermediate.dense"));
        Lora.addAdapter(m, "c", LoraConfig.of(3, 6).withTargetModules("query"));
        randomizeAll(m);
        m.eval();
        return m;
    }

    private static void randomizeAll(Module m) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                for (String n : l.adapterNames()) {
                    l.loraA(n).copy_(Tensor.randn(l.loraA(n).shape()).mul(0.5));
                    l.loraB(n).copy_(Tensor.randn(l.loraB(n).shape()).mul(0.5));
                }
            }
        }
    }

    /** Runs {@code body} and checks it made {@code fused} fused calls and no per-adapter loop. */
    private static <T> T fused(int fused, java.util.function.Supplier<T> body) {
        long f = AdapterBank.fusedCalls();
        long p = LoraLayer.perAdapterCalls();
        T out = body.get();
        assertEquals(0, LoraLayer.perAdapterCalls() - p, "mixed batches that took the per-adapter loop");
        assertEquals(fused, AdapterBank.fusedCalls() - f, "fused calls");
        return out;
    }

    /** Row i of the model alone with only its adapter active (the base model for __base__). */
    private static Tensor alone(BertModel m, Tensor ids, Tensor mask, int i, String name) {
        if (name.equals(BASE)) Lora.setAdapter(m);
        else Lora.setAdapter(m, name);
        return m.forward(ids.narrow(0, i, 1), mask.narrow(0, i, 1), null);
    }

    private static void checkEncoder(DType dtype, double tol) {
        try (BertModel m = encoder(41); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            m.to(dtype);
            Tensor ids = Tensor.of(IDS, 6, 5);
            Tensor mask = Tensor.of(MASK, 6, 5);
            // Six LoRA layers (query, value, intermediate.dense in each of 2 layers), each with a row's adapter: 6 calls.
            Tensor mixed = fused(6, () -> Lora.withRowAdapters(m, 6, () -> m.forward(ids, mask, null), ROWS));
            assertEquals(dtype, mixed.dtype());
            for (int i = 0; i < ROWS.length; i++) {
                Tensor want = alone(m, ids, mask, i, ROWS[i]);
                assertTrue(mixed.narrow(0, i, 1).allclose(want, tol, tol), "row " + i + " (" + ROWS[i] + ")");
            }
            Lora.setAdapter(m, "a");
            assertFalse(mixed.narrow(0, 0, 1).allclose(alone(m, ids, mask, 0, "a"), 1e-3, 1e-3),
                    "row 0 with another adapter differs: the check can fail");
        }
    }

    @Test
    void float32EncoderRowsEqualEachRowAloneThroughTheFusedKernel() {
        checkEncoder(DType.FLOAT32, 1e-5);
    }

    @Test
    void float64EncoderRowsEqualEachRowAloneThroughTheFusedKernel() {
        checkEncoder(DType.FLOAT64, 1e-12);
    }

    /** A batch of base-only rows touches no adapter at all: the output is the base model's, bit for bit. */
    @Test
    void aBatchWithoutAdaptersIsTheBaseModel() {
        try (BertModel m = encoder(42); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Tensor ids = Tensor.of(IDS, 6, 5);
            Tensor mask = Tensor.of(MASK, 6, 5);
            String[] none = {BASE, BASE, BASE, BASE, BASE, BASE};
            Tensor mixed = fused(0, () -> Lora.withRowAdapters(m, 6, () -> m.forward(ids, mask, null), none));
            try (var off = Lora.disableAdapters(m)) {
                assertTrue(mixed.equal(m.forward(ids, mask, null)));
            }
        }
    }

    /** Linear and GPT-2 Conv1D (fan_in_fan_out) bases, 3-d and 4-d inputs, a non-contiguous input. */
    @Test
    void nDimensionalInputsAndBothWeightLayoutsAreFused() {
        Torch.manualSeed(43);
        try (Sequential m = new Sequential(new Linear(6, 7), new HfConv1D(5, 7)); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Lora.wrap(m, LoraConfig.of(2, 4));
            Lora.addAdapter(m, "e", LoraConfig.of(3, 3));
            randomizeAll(m);
            m.eval();
            String[] rows = {"e", BASE, "default"};
            Tensor x3 = Tensor.randn(3, 6, 4).transpose(1, 2); // (3, 4, 6), not contiguous
            Tensor x4 = Tensor.randn(3, 2, 3, 6);
            for (Tensor x : List.of(x3, x4)) {
                Tensor mixed = fused(2, () -> Lora.forward(m, x, rows));
                for (int i = 0; i < rows.length; i++) {
                    if (rows[i].equals(BASE)) Lora.setAdapter(m);
                    else Lora.setAdapter(m, rows[i]);
                    Tensor want = m.forward(x.narrow(0, i, 1).contiguous());
                    assertTrue(mixed.narrow(0, i, 1).allclose(want, 1e-5, 1e-5), "row " + i + " of " + java.util.Arrays.toString(x.shape()));
                }
            }
        }
    }

    /** A bfloat16 base keeps float32 factors; its input is cast once, the sum rounded back, as PEFT does. */
    @Test
    void bfloat16BaseCastsItsInputAndIsFused() {
        Torch.manualSeed(44);
        try (Sequential m = new Sequential(new Linear(8, 6)); TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            m.to(DType.BFLOAT16);
            Lora.wrap(m, LoraConfig.of(2, 4));
            Lora.addAdapter(m, "e", LoraConfig.of(3, 3));
            randomizeAll(m);
            m.eval();
            String[] rows = {"e", "default", BASE, "e"};
            Tensor x = Tensor.randn(4, 5, 8).to(DType.BFLOAT16);
            Tensor mixed = fused(1, () -> Lora.forward(m, x, rows));
            assertEquals(DType.BFLOAT16, mixed.dtype());
            for (int i = 0; i < rows.length; i++) {
                if (rows[i].equals(BASE)) Lora.setAdapter(m);
                else Lora.setAdapter(m, rows[i]);
                Tensor want = m.forward(x.narrow(0, i, 1)).to(DType.FLOAT32);
                // The same float32 sums in another order, rounded once to bfloat16 (8 bits): one ulp at most.
                assertTrue(mixed.narrow(0, i, 1).to(DType.FLOAT32).allclose(want, 1e-2, 1e-2), "row " + i);
            }
        }
    }

    /** The bank against plain per-row products: ranks 1 and 3 (zero-padded), 2-d to 4-d inputs, both kernel branches, __base__ rows zero. */
    @Test
    void bankDeltaOfAFourDimensionalInputIsEachRowsProduct() {
        Torch.manualSeed(45);
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad(); AdapterBank bank = new AdapterBank(5, 4)) {
            Tensor a1 = Tensor.randn(1, 5), b1 = Tensor.randn(4, 1);
            Tensor a3 = Tensor.randn(3, 5), b3 = Tensor.randn(4, 3);
            bank.put("one", a1, b1, 0.5);
            bank.put("three", a3, b3, 2.0);
            assertEquals(2 * 3 * (5 + 4) * 4 + 2 * 4, bank.nbytes(), "one copy of each adapter, padded to rank 3, and the scales");
            Tensor x = Tensor.randn(3, 2, 3, 5);
            String[] rows = {"three", BASE, "one"};
            Tensor d = fused(1, () -> bank.delta(x, rows));
            assertArrayEquals(new long[] {3, 2, 3, 4}, d.shape());
            assertTrue(d.narrow(0, 0, 1).allclose(x.narrow(0, 0, 1).matmul(a3.t()).matmul(b3.t()).mul(2.0), 1e-5, 1e-5));
            assertTrue(d.narrow(0, 1, 1).equal(Tensor.zeros(1, 2, 3, 4)));
            assertTrue(d.narrow(0, 2, 1).allclose(x.narrow(0, 2, 1).matmul(a1.t()).matmul(b1.t()).mul(0.5), 1e-5, 1e-5));
            // Short and long runs of rows with one adapter (seq 1 and 20).
            for (long seq : new long[] {1, 20}) {
                Tensor xs = Tensor.randn(5, seq, 5);
                String[] runs = {"three", "three", BASE, "one", "three"};
                Tensor ds = fused(1, () -> bank.delta(xs, runs));
                for (int i = 0; i < runs.length; i++) {
                    Tensor row = xs.narrow(0, i, 1);
                    Tensor want = runs[i].equals(BASE) ? Tensor.zeros(1, seq, 4)
                            : runs[i].equals("one") ? row.matmul(a1.t()).matmul(b1.t()).mul(0.5) : row.matmul(a3.t()).matmul(b3.t()).mul(2.0);
                    assertTrue(ds.narrow(0, i, 1).allclose(want, 1e-5, 1e-5), "seq " + seq + ", row " + i);
                }
            }
            assertThrows(IllegalArgumentException.class, () -> bank.delta(Tensor.randn(3, 2, 4), rows), "last dimension must be in");
            assertThrows(IllegalArgumentException.class, () -> bank.delta(Tensor.randn(5), "one"), "a 1-d input has no rows");
            assertTrue(bank.remove("one"));
            assertEquals(3 * (5 + 4) * 4 + 4, bank.nbytes(), "removing frees the adapter's share");
        }
    }
}
