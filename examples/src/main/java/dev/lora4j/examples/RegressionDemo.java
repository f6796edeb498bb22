package dev.lora4j.examples;

import static dev.lora4j.nn.Functional.mseLoss;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.optim.Adam;
import java.util.Locale;

/**
 * Seed 003 ("Comprendre LoRA avec un exemple minimal") with lora4j: fit a full-rank linear
 * model to y = X·θ, shift θ by +1, then learn the shift with a rank-1 {@link LoraLinear}
 * (ΔW = B·A) while the base weight stays frozen, and merge ΔW into the base weight.
 *
 * <p>Flags: {@code --n N --in D --out D --steps S --seed S}. Defaults finish in seconds.
 */
public final class RegressionDemo {

    /** What one run found. */
    public record Result(double baseLossOnNewData, double loraLoss, double mergedLoss, double deltaMean,
                         double deltaMaxAbsError) {}

    private RegressionDemo() {}

    public static void main(String[] args) {
        Flags.check(args, java.util.List.of("--n", "--in", "--out", "--steps", "--seed"));
        int n = Flags.intFlag(args, "--n", 2000);
        int dIn = Flags.intFlag(args, "--in", 201);
        int dOut = Flags.intFlag(args, "--out", 200);
        int steps = Flags.intFlag(args, "--steps", 300);
        long seed = Flags.longFlag(args, "--seed", 42);
        Torch.setNumThreads(Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "lora4j regression demo (seed 003) on LibTorch %s, %d threads%n",
                Torch.version(), Torch.getNumThreads());
        System.out.printf(Locale.ROOT, "y = X·θ with X %d×%d, θ %d×%d; then θ+1 learned by a rank-1 LoRA%n%n", n, dIn, dIn, dOut);
        run(n, dIn, dOut, steps, seed, true);
    }

    /** Runs the whole experiment; prints progress when {@code verbose}. */
    public static Result run(int n, int dIn, int dOut, int steps, long seed, boolean verbose) {
        Torch.manualSeed(seed);
        try (TensorScope scope = TensorScope.open(); Linear model = new Linear(dIn, dOut, false)) {
            Tensor theta = Tensor.randn(dIn, dOut);
            Tensor x = Tensor.randn(n, dIn);
            Tensor y = x.matmul(theta);

            // The "pre-trained" model, trained on all its weights.
            long t0 = System.nanoTime();
            train("base", model, x, y, steps, verbose);
            if (verbose) System.out.printf(Locale.ROOT, "  (%.1f s)%n%n", (System.nanoTime() - t0) / 1e9);

            // New data from θ + 1.
            Tensor x2 = Tensor.randn(n, dIn);
            Tensor y2 = x2.matmul(theta.add(1.0));
            double baseLoss = loss(model, x2, y2);
            if (verbose) System.out.printf(Locale.ROOT, "base model on the new data: MSE %.3f%n%n", baseLoss);

            // Rank-1 LoRA around the frozen model: A ~ N(0, 1), B = 0, as in the seed.
            LoraLinear lora = new LoraLinear(model, LoraConfig.of(1, 1).withInit(LoraConfig.Init.NORMAL));
            t0 = System.nanoTime();
            double loraLoss = train("lora", lora, x2, y2, steps, verbose);
            if (verbose) System.out.printf(Locale.ROOT, "  (%.1f s)%n%n", (System.nanoTime() - t0) / 1e9);

            // ΔW = s·B·A should be the all-ones matrix (θ+1 vs θ, as out×in).
            Tensor delta = lora.deltaWeight();
            if (verbose) {
                System.out.println("ΔW[:5, :5] =");
                float[] d = delta.narrow(0, 0, 5).narrow(1, 0, 5).contiguous().toFloatArray();
                for (int i = 0; i < 5; i++) {
                    StringBuilder row = new StringBuilder("  ");
                    for (int j = 0; j < 5; j++) row.append(String.format(Locale.ROOT, "%8.4f", d[i * 5 + j]));
                    System.out.println(row);
                }
            }
            double deltaMean = delta.mean().item();
            double maxErr = delta.sub(1.0).abs().max().item();
            long loraParams = lora.trainableParameterCount();
            lora.mergeAndUnload(true); // ΔW is now in the model's weight; the adapter is freed
            double merged = loss(model, x2, y2);
            if (verbose) {
                System.out.printf(Locale.ROOT, "%nmean of ΔW %.5f (max |ΔW-1| %.5f)%n", deltaMean, maxErr);
                System.out.printf(Locale.ROOT, "MSE on the new data: base %.3f, base+LoRA %.6f, merged into the base %.6f%n",
                        baseLoss, loraLoss, merged);
                System.out.printf(Locale.ROOT, "trainable parameters: full %d, rank-1 LoRA %d%n",
                        model.parameterCount(), loraParams);
            }
            return new Result(baseLoss, loraLoss, merged, deltaMean, maxErr);
        }
    }

    private static double loss(Module model, Tensor x, Tensor y) {
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            return mseLoss(model.forward(x), y).item();
        }
    }

    /** Full-batch Adam (the seed's optim_adam) on the trainable parameters; returns the last loss. */
    private static double train(String name, Module model, Tensor x, Tensor y, int steps, boolean verbose) {
        double last = Double.NaN;
        try (Adam opt = new Adam(model.trainableParameters(), 0.05)) {
            for (int step = 1; step <= steps; step++) {
                try (TensorScope scope = TensorScope.open()) {
                    opt.zeroGrad();
                    Tensor loss = mseLoss(model.forward(x), y);
                    loss.backward();
                    opt.step();
                    last = loss.item();
                }
                if (verbose && (step % Math.max(1, steps / 10) == 0 || step == steps)) {
                    System.out.printf(Locale.ROOT, "[%s %4d] loss %.6f%n", name, step, last);
                }
            }
        }
        return last;
    }
}
