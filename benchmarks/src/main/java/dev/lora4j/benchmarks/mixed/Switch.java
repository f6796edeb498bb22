package dev.lora4j.benchmarks.mixed;

import dev.lora4j.Tensor;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Module;

/**
 * Stands in a model where a {@link LoraLinear} was and runs one of the three mixed-batch
 * algorithms: {@link Algorithm#FUSED} is the layer itself (inside
 * {@code Lora.withRowAdapters}), the others the layer's base plus
 * {@link MixedAlgorithms#peftLoop} or {@link MixedAlgorithms#gather} on its factors. Benchmark
 * code: one thread, the algorithm and rows set before each forward.
 */
final class Switch extends Module {

    enum Algorithm { FUSED, PEFT_LOOP, GATHER }

    private final LoraLinear layer;
    private final MixedAlgorithms.Stacks stacks;
    Algorithm algorithm = Algorithm.FUSED;
    String[] rows;

    Switch(LoraLinear layer) {
        this.layer = registerModule("inner", layer);
        this.stacks = MixedAlgorithms.Stacks.of(layer);
    }

    LoraLinear layer() {
        return layer;
    }

    MixedAlgorithms.Stacks stacks() {
        return stacks;
    }

    @Override
    public Tensor forward(Tensor x) {
        if (algorithm == Algorithm.FUSED) return layer.forward(x);
        try (Tensor base = layer.baseLayer().forward(x);
                Tensor delta = algorithm == Algorithm.PEFT_LOOP ? MixedAlgorithms.peftLoop(x, rows, layer)
                        : MixedAlgorithms.gather(x, stacks.indices(rows), stacks)) {
            return base.add(delta);
        }
    }

    @Override
    public void close() {
        stacks.close();
        super.close();
    }
}
