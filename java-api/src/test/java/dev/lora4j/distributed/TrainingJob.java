package dev.lora4j.distributed;

import static dev.lora4j.nn.Functional.mseLoss;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.data.Batch;
import dev.lora4j.data.DataLoader;
import dev.lora4j.data.DistributedSampler;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The small LoRA fine-tune the distributed tests run on every rank and, as the reference, in one
 * process: a LoRA-wrapped MLP regressing a fixed random map, trained with Adam on batches a
 * {@link DistributedSampler} picks (shuffled, reshuffled per epoch).
 */
final class TrainingJob {

    static final int SAMPLES = 64;
    static final long DATA_SEED = 7;
    static final long SAMPLER_SEED = 11;
    static final long MODEL_SEED = 2024;

    private TrainingJob() {}

    /** The LoRA weights after {@code steps} steps with {@code batch} samples per rank (group null: one process). */
    static Map<String, float[]> train(ProcessGroup group, int batch, int steps) {
        int world = group == null ? 1 : group.worldSize();
        int rank = group == null ? 0 : group.rank();
        try (TensorScope scope = TensorScope.open(); TensorDataset data = data()) {
            // Ranks other than 0 start from different weights: DistributedDataParallel must
            // replace them with rank 0's.
            Module model = model(MODEL_SEED + rank);
            try (model) {
                DistributedDataParallel ddp = group == null ? null : new DistributedDataParallel(model, group);
                List<Tensor> params = ddp == null ? model.trainableParameters() : ddp.trainableParameters();
                DistributedSampler sampler = new DistributedSampler(SAMPLES, world, rank, true, SAMPLER_SEED, false);
                DataLoader loader = new DataLoader(data, batch, sampler, true);
                try (Adam opt = new Adam(params, 0.01)) {
                    int step = 0;
                    for (int epoch = 0; step < steps; epoch++) {
                        sampler.setEpoch(epoch);
                        for (Batch b : loader) {
                            if (step++ == steps) break;
                            try (b; TensorScope it = TensorScope.open()) {
                                opt.zeroGrad();
                                Tensor loss = mseLoss(model.forward(b.inputs()), b.targets());
                                if (ddp != null) ddp.backward(loss);
                                else loss.backward();
                                opt.step();
                            }
                        }
                    }
                }
                Map<String, float[]> out = new LinkedHashMap<>();
                Lora.loraStateDict(model, LoraConfig.Bias.NONE).forEach((n, t) -> out.put(n, t.toFloatArray()));
                return out;
            }
        }
    }

    static Module model(long seed) {
        Torch.manualSeed(seed);
        Module m = new Sequential(new Linear(6, 12), Activation.tanh(), new Linear(12, 3));
        Lora.wrap(m, LoraConfig.of(2, 4).withInit(LoraConfig.Init.GAUSSIAN));
        // Start B away from zero, so that both factors train from the first step.
        try (var ng = Torch.noGrad()) {
            Lora.loraStateDict(m, LoraConfig.Bias.NONE).forEach((n, t) -> {
                if (n.contains("lora_B")) t.copy_(Tensor.randn(t.shape()).mul(0.1));
            });
        }
        return m;
    }

    static TensorDataset data() {
        Torch.manualSeed(DATA_SEED);
        Tensor x = Tensor.randn(SAMPLES, 6);
        Tensor y = x.matmul(Tensor.randn(6, 3)).tanh();
        return new TensorDataset(x, y);
    }

    static void write(Path file, Map<String, float[]> weights) throws IOException {
        try (var out = new DataOutputStream(Files.newOutputStream(file))) {
            out.writeInt(weights.size());
            for (var e : weights.entrySet()) {
                out.writeUTF(e.getKey());
                out.writeInt(e.getValue().length);
                for (float f : e.getValue()) out.writeFloat(f);
            }
        }
    }

    static Map<String, float[]> read(Path file) throws IOException {
        try (var in = new DataInputStream(Files.newInputStream(file))) {
            Map<String, float[]> out = new LinkedHashMap<>();
            for (int i = in.readInt(); i > 0; i--) {
                String name = in.readUTF();
                float[] v = new float[in.readInt()];
                for (int k = 0; k < v.length; k++) v[k] = in.readFloat();
                out.put(name, v);
            }
            return out;
        }
    }

    /** The largest absolute difference between two weight sets with the same names and sizes. */
    static double maxDifference(Map<String, float[]> a, Map<String, float[]> b) {
        if (!a.keySet().equals(b.keySet())) throw new AssertionError("different names: " + a.keySet() + " vs " + b.keySet());
        double max = 0;
        for (var e : a.entrySet()) {
            float[] x = e.getValue(), y = b.get(e.getKey());
            if (x.length != y.length) throw new AssertionError(e.getKey() + ": sizes " + x.length + " vs " + y.length);
            for (int i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
        }
        return max;
    }
}
