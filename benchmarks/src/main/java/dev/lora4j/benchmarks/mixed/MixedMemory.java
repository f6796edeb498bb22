package dev.lora4j.benchmarks.mixed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.models.bert.BertModel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Memory per resident adapter on the MiniLM-shaped encoder: the bytes of one adapter's
 * tensors (its factors in the model, and its share of the serving banks' stacks), and the
 * process's resident set (VmRSS) as adapters are loaded 100 at a time, each step followed by
 * one mixed batch (which builds the banks). Prints a Markdown table.
 *
 * <p>Run: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.mixed.MixedMemory [steps]}.
 */
public final class MixedMemory {

    private MixedMemory() {}

    public static void main(String[] args) throws Exception {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        try (BertModel m = MiniLmFixture.encoder(1); Tensor ids = MiniLmFixture.ids(2, 8, 3)) {
            long factorBytes = 0;
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                for (Tensor t : new Tensor[] {l.loraA(MiniLmFixture.name(0)), l.loraB(MiniLmFixture.name(0))}) {
                    factorBytes += t.numel() * t.dtype().byteSize();
                }
            }
            batch(m, ids, 1);
            long rss0 = rss();
            System.out.println("| adapters resident | VmRSS (MiB) | growth per 100 adapters (MiB) | bank bytes per adapter |");
            System.out.println("|---:|---:|---:|---:|");
            System.out.printf("| 1 | %.1f | | |%n", rss0 / 1048576.0);
            long prev = rss0;
            for (int k = 1; k <= steps; k++) {
                MiniLmFixture.addAdapters(m, (k - 1) * 100 + 1, k * 100 + 1);
                batch(m, ids, k * 100 + 1);
                long now = rss();
                System.out.printf("| %d | %.1f | %.1f | %d |%n", k * 100 + 1, now / 1048576.0, (now - prev) / 1048576.0, bankBytes(m) / (k * 100 + 1));
                prev = now;
            }
            System.out.printf("%nOne adapter's factors in the model (A and B of 12 layers, float32): %d bytes (%.1f KiB).%n",
                    factorBytes, factorBytes / 1024.0);
            System.out.printf("Average RSS growth per adapter: %.1f KiB (the model's factors, the banks' stacked copy, module objects).%n",
                    (prev - rss0) / 1024.0 / (steps * 100));
        }
    }

    /** One mixed batch over every resident adapter (round robin), which builds every layer's bank. */
    private static void batch(BertModel m, Tensor ids, int adapters) {
        String[] rows = new String[(int) ids.size(0)];
        for (int i = 0; i < rows.length; i++) rows[i] = MiniLmFixture.name((adapters - 1 - i) < 0 ? 0 : adapters - 1 - i);
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            Lora.withRowAdapters(m, rows.length, () -> m.forward(ids, null, null), rows);
        }
        System.gc();
    }

    /** The bytes of every bank's stacks, read through a fresh bank per layer (what the layers' banks hold). */
    private static long bankBytes(BertModel m) {
        long n = 0;
        for (LoraLayer l : Lora.loraLayers(m).values()) {
            var lin = (dev.lora4j.lora.LoraLinear) l;
            try (AdapterBank b = new AdapterBank(lin.inFeatures(), lin.outFeatures())) {
                b.putAll(lin);
                n += b.nbytes();
            }
        }
        return n;
    }

    private static long rss() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }
}
