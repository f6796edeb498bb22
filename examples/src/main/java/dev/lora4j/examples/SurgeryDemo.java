package dev.lora4j.examples;

import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.util.Locale;

/**
 * Seed 001: replace every Linear of a model by a LoRA wrapper (model surgery), printing the
 * module tree before and after and the trainable-parameter counts.
 *
 * <p>Flags: {@code --rank R --alpha A}.
 */
public final class SurgeryDemo {

    /** Counts before and after. */
    public record Result(long parameters, long trainableBefore, long parametersAfter, long trainableAfter, int wrapped) {}

    private SurgeryDemo() {}

    public static void main(String[] args) {
        Flags.check(args, java.util.List.of("--rank", "--alpha"));
        run(Flags.intFlag(args, "--rank", 4), Flags.doubleFlag(args, "--alpha", 8), true);
    }

    /** The seed's small model: 784 → 256 → 128 → 10 with ReLUs. */
    static Module model() {
        return new Sequential(new Linear(784, 256), Activation.relu(), new Linear(256, 128), Activation.relu(),
                new Linear(128, 10));
    }

    public static Result run(int rank, double alpha, boolean verbose) {
        try (Module model = model()) {
            long params = model.parameterCount();
            long trainable = model.trainableParameterCount();
            if (verbose) {
                System.out.println("before:\n" + model);
                System.out.printf(Locale.ROOT, "parameters %,d, trainable %,d%n%n", params, trainable);
            }
            Lora.WrapReport report = Lora.wrap(model, LoraConfig.of(rank, alpha));
            long after = model.parameterCount();
            long trainableAfter = model.trainableParameterCount();
            if (verbose) {
                System.out.println("after wrapping " + report.wrapped() + " with rank-" + rank + " LoRA:\n" + model);
                System.out.printf(Locale.ROOT, "parameters %,d, trainable %,d (%.2f%% of the original)%n",
                        after, trainableAfter, 100.0 * trainableAfter / params);
            }
            return new Result(params, trainable, after, trainableAfter, report.wrapped().size());
        }
    }
}
