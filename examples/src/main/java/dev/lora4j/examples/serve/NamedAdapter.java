package dev.lora4j.examples.serve;

import dev.lora4j.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * One loaded adapter: its LoRA factors per linear layer of the served model (by the layer's
 * index in the {@code Sequential}), read from a PEFT folder. The service owns the factors;
 * {@link #close()} frees them.
 *
 * <p>A DyLoRA adapter ({@code "lora4j_dylora": true} in its {@code adapter_config.json}; the
 * factors hold r_max ranks) can be served at any rank b ≤ {@link #maxRank()}: the first b rows
 * of A and columns of B, scaled by α/b. A plain LoRA adapter is served at its own rank only.
 *
 * @param reported config fields the PEFT loader did not use (unknown or descriptive)
 */
record NamedAdapter(String name, Path folder, boolean dylora, Map<Integer, Factors> layers, List<String> reported)
        implements AutoCloseable {

    /** The factors of one layer: A (r, in), B (out, r), α, and whether the scale is α/√r (rsLoRA). */
    record Factors(Tensor a, Tensor b, double alpha, boolean rslora) {
        int r() {
            return (int) a.size(0);
        }

        /** The scale at rank {@code rank}: α/rank, or α/√rank with rsLoRA. */
        double scaleAt(int rank) {
            return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
        }
    }

    /** The largest rank every layer can serve (the smallest r over the layers). */
    int maxRank() {
        return layers.values().stream().mapToInt(Factors::r).min().orElse(0);
    }

    @Override
    public void close() {
        layers.values().forEach(f -> {
            f.a().close();
            f.b().close();
        });
    }
}
