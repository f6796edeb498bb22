package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.nn.Linear;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Mixed-batch LoRA: each row's update equals running that row alone through its own adapter. */
class AdapterBankTest {

    @Test
    void mixedBatchEqualsEachRowAloneWithItsAdapter() {
        Torch.manualSeed(21);
        int in = 12, out = 7;
        List<LoraLinear> layers = new ArrayList<>();
        try (Linear base = new Linear(in, out); AdapterBank bank = new AdapterBank(in, out); TensorScope s = TensorScope.open()) {
            int[] ranks = {1, 3, 8, 2};
            for (int i = 0; i < ranks.length; i++) {
                LoraLinear l = new LoraLinear(new Linear(in, out), LoraConfig.of(ranks[i], 2.0 + i).withRslora(i == 2));
                try (var ng = Torch.noGrad()) {
                    l.loraB().copy_(Tensor.randn(l.loraB().shape()));
                }
                l.eval();
                layers.add(l);
                bank.put("a" + i, l);
            }
            assertEquals(List.of("a0", "a1", "a2", "a3"), bank.names());
            String[] names = {"a2", AdapterBank.BASE, "a0", "a3", "a2", "a1", AdapterBank.BASE, "a3"};
            Tensor x = Tensor.randn(names.length, in);
            Tensor delta = bank.delta(x, names);
            assertArrayEquals(new long[] {names.length, out}, delta.shape());
            for (int row = 0; row < names.length; row++) {
                Tensor xr = x.narrow(0, row, 1);
                Tensor got = delta.narrow(0, row, 1);
                if (names[row].equals(AdapterBank.BASE)) {
                    assertEquals(0.0, got.abs().max().item(), "base rows get no update");
                    continue;
                }
                LoraLinear l = layers.get(Integer.parseInt(names[row].substring(1)));
                Tensor alone = l.forward(xr).sub(l.baseLayer().forward(xr));
                assertTrue(got.allclose(alone, 1e-5, 1e-5), "row " + row + " (" + names[row] + ")");
            }
            // Replace and remove.
            bank.put("a0", layers.get(1));
            Tensor x2 = x.narrow(0, 2, 1);
            Tensor replaced = layers.get(1).forward(x2).sub(layers.get(1).baseLayer().forward(x2));
            assertTrue(bank.delta(x, names).narrow(0, 2, 1).allclose(replaced, 1e-5, 1e-5), "row 2 now uses a1's factors");
            assertTrue(bank.remove("a3"));
            assertFalse(bank.remove("a3"));
            var e = assertThrows(IllegalArgumentException.class, () -> bank.delta(x, names));
            assertTrue(e.getMessage().contains("a3"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> bank.delta(x, "a0"));
            assertThrows(IllegalArgumentException.class, () -> bank.put(AdapterBank.BASE, layers.get(0)));
            assertThrows(IllegalArgumentException.class, () -> bank.put("bad", Tensor.zeros(2, in + 1), Tensor.zeros(out, 2), 1));
        } finally {
            layers.forEach(LoraLinear::close);
        }
    }

    @Test
    void float64AdaptersGiveTheSameUpdateAsTheFusedFloat32Kernel() {
        Torch.manualSeed(22);
        try (TensorScope s = TensorScope.open(); AdapterBank f32 = new AdapterBank(9, 5); AdapterBank f64 = new AdapterBank(9, 5)) {
            for (int i = 0; i < 3; i++) {
                Tensor a = Tensor.randn(i + 1, 9);
                Tensor b = Tensor.randn(5, i + 1);
                f32.put("n" + i, a, b, 0.5 + i);
                f64.put("n" + i, a.to(dev.lora4j.DType.FLOAT64), b.to(dev.lora4j.DType.FLOAT64), 0.5 + i);
            }
            String[] names = {"n2", "n0", AdapterBank.BASE, "n1", "n2"};
            Tensor x = Tensor.randn(names.length, 9);
            Tensor fused = f32.delta(x, names);
            Tensor dense = f64.delta(x.to(dev.lora4j.DType.FLOAT64), names);
            assertEquals(dev.lora4j.DType.FLOAT64, dense.dtype());
            assertTrue(fused.to(dev.lora4j.DType.FLOAT64).allclose(dense, 1e-5, 1e-5));
        }
    }

    @Test
    void anEmptyBankGivesZeros() {
        try (AdapterBank bank = new AdapterBank(3, 2); TensorScope s = TensorScope.open()) {
            assertEquals(0.0, bank.delta(Tensor.ones(2, 3), AdapterBank.BASE, AdapterBank.BASE).abs().sum().item());
        }
    }
}
