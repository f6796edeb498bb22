package dev.lora4j.examples;

import static dev.lora4j.nn.Functional.mseLoss;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.Locale;

/**
 * Seed 003 ("Comprendre LoRA avec un exemple minimal") written with lora4j tensors: fit a
 * full-rank linear model to y = X·θ, shift θ by +1, then learn the shift with a rank-1 LoRA
 * (ΔW = s·B·A) while the base weight stays frozen, and merge the delta into the base weight.
 *
 * <p>Flags: {@code --n N --in D --out D --steps S --seed S}. Defaults finish in seconds.
 */
public final class RegressionDemo {

    /** What one run found. */
    public record Result(double baseLossOnNewData, double loraLoss, double mergedLoss, double deltaMean,
                         double deltaMaxAbsError) {}

    private RegressionDemo() {}

    public static void main(String[] args) {
        int n = intFlag(args, "--n", 2000);
        int dIn = intFlag(args, "--in", 201);
        int dOut = intFlag(args, "--out", 200);
        int steps = intFlag(args, "--steps", 300);
        long seed = intFlag(args, "--seed", 42);
        Torch.setNumThreads(Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "lora4j regression demo (seed 003) on LibTorch %s, %d threads%n",
                Torch.version(), Torch.getNumThreads());
        System.out.printf(Locale.ROOT, "y = X·θ with X %d×%d, θ %d×%d; then θ+1 learned by a rank-1 LoRA%n%n", n, dIn, dIn, dOut);
        run(n, dIn, dOut, steps, seed, true);
    }

    /** Runs the whole experiment; prints progress when {@code verbose}. */
    public static Result run(int n, int dIn, int dOut, int steps, long seed, boolean verbose) {
        Torch.manualSeed(seed);
        try (TensorScope scope = TensorScope.open()) {
            Tensor theta = Tensor.randn(dIn, dOut);
            Tensor x = Tensor.randn(n, dIn);
            Tensor y = x.matmul(theta);

            // The "pre-trained" model: W (out×in), trained by full-batch gradient descent.
            Tensor w = Tensor.zeros(dOut, dIn).requiresGrad_(true);
            long t0 = System.nanoTime();
            train("base", steps, verbose, () -> mseLoss(x.matmul(w.t()), y), 0.05, w);
            if (verbose) System.out.printf(Locale.ROOT, "  (%.1f s)%n%n", (System.nanoTime() - t0) / 1e9);

            // New data from θ + 1.
            Tensor x2 = Tensor.randn(n, dIn);
            Tensor y2 = x2.matmul(theta.add(1.0));
            double baseLoss;
            try (var ng = Torch.noGrad()) {
                baseLoss = mseLoss(x2.matmul(w.t()), y2).item();
            }
            if (verbose) System.out.printf(Locale.ROOT, "base model on the new data: MSE %.3f%n%n", baseLoss);

            // Rank-1 LoRA: y = x·(W + s·B·A)ᵀ with W frozen; A (1×in) random, B (out×1) zero.
            w.requiresGrad_(false);
            double s = 1.0;
            Tensor a = Tensor.randn(1, dIn).mul(1.0 / Math.sqrt(dIn)).requiresGrad_(true);
            Tensor b = Tensor.zeros(dOut, 1).requiresGrad_(true);
            t0 = System.nanoTime();
            double loraLoss = train("lora", steps, verbose,
                    () -> mseLoss(x2.matmul(w.t()).add(x2.matmul(a.t()).matmul(b.t()), s), y2), 0.05, a, b);
            if (verbose) System.out.printf(Locale.ROOT, "  (%.1f s)%n%n", (System.nanoTime() - t0) / 1e9);

            // ΔW = s·B·A should be the all-ones matrix (θ+1 vs θ, transposed to out×in).
            Tensor delta = b.detach().matmul(a.detach()).mul(s);
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
            double merged;
            try (var ng = Torch.noGrad()) {
                w.add_(delta);
                merged = mseLoss(x2.matmul(w.t()), y2).item();
            }
            if (verbose) {
                System.out.printf(Locale.ROOT, "%nmean of ΔW %.5f (max |ΔW-1| %.5f)%n", deltaMean, maxErr);
                System.out.printf(Locale.ROOT, "MSE on the new data: base %.3f, base+LoRA %.6f, merged %.6f%n",
                        baseLoss, loraLoss, merged);
                System.out.printf(Locale.ROOT, "trainable parameters: full %d, rank-1 LoRA %d%n",
                        (long) dIn * dOut, (long) dIn + dOut);
            }
            return new Result(baseLoss, loraLoss, merged, deltaMean, maxErr);
        }
    }

    @FunctionalInterface
    private interface LossFn {
        Tensor loss();
    }

    /**
     * Full-batch Adam (Kingma and Ba, the update the seed's optim_adam makes) on {@code params};
     * returns the last loss. Written with tensor ops; lora4j's optimizers come with the nn layer.
     */
    private static double train(String name, int steps, boolean verbose, LossFn lossFn, double lr, Tensor... params) {
        double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        Tensor[] m = new Tensor[params.length];
        Tensor[] v = new Tensor[params.length];
        for (int i = 0; i < params.length; i++) {
            m[i] = Tensor.zeros(params[i].shape());
            v[i] = Tensor.zeros(params[i].shape());
        }
        double last = Double.NaN;
        for (int step = 1; step <= steps; step++) {
            try (TensorScope scope = TensorScope.open()) {
                Tensor loss = lossFn.loss();
                loss.backward();
                last = loss.item();
                double c1 = 1 - Math.pow(beta1, step), c2 = 1 - Math.pow(beta2, step);
                try (var ng = Torch.noGrad()) {
                    for (int i = 0; i < params.length; i++) {
                        Tensor g = params[i].grad();
                        m[i].mul_(beta1).add_(g, 1 - beta1);
                        v[i].mul_(beta2).add_(g.mul(g), 1 - beta2);
                        Tensor denom = v[i].div(c2).sqrt().add(eps);
                        params[i].add_(m[i].div(denom), -lr / c1);
                        params[i].zeroGrad();
                    }
                }
            }
            if (verbose && (step % Math.max(1, steps / 10) == 0 || step == steps)) {
                System.out.printf(Locale.ROOT, "[%s %4d] loss %.6f%n", name, step, last);
            }
        }
        return last;
    }

    private static int intFlag(String[] args, String name, int def) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) return Integer.parseInt(args[i + 1]);
        }
        return def;
    }
}
