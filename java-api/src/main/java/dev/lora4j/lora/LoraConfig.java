package dev.lora4j.lora;

import java.util.List;
import java.util.Objects;

/**
 * The settings of a LoRA adapter, with PEFT's {@code LoraConfig} names and defaults
 * (r 8, lora_alpha 8, no dropout). Immutable and thread-safe; derive variants with the
 * {@code with} methods.
 *
 * @param r rank of the update (≥ 1)
 * @param loraAlpha α; the update is scaled by α/r (α/√r with rsLoRA)
 * @param loraDropout dropout probability on the adapter's input (Linear, Conv)
 * @param fanInFanOut the base weight is stored (in, out), as GPT-2's Conv1D; as PEFT, LoRA
 *     layers correct it to the base's layout (false for Linear, true for
 *     {@link dev.lora4j.nn.HfConv1D}) with a warning, and honour it for other 2-d weights
 * @param useRslora scale by α/√r instead of α/r (rank-stabilised LoRA)
 * @param init how A and B start (B·A = 0 in every mode but none)
 * @param targetModules names to wrap for {@link Lora#wrap}: a name matches a module whose
 *     dotted path equals it or ends with "." + it; the single entry {@code "all-linear"}
 *     selects every Linear; empty selects every Linear, Embedding and Conv
 * @param targetRegex when not null, a module is selected when its full path matches this
 *     regular expression (instead of {@code targetModules})
 * @param excludeModules names (same matching as targetModules) never wrapped
 * @param bias which biases train with {@link Lora#markOnlyLoraAsTrainable}
 */
public record LoraConfig(int r, double loraAlpha, double loraDropout, boolean fanInFanOut, boolean useRslora,
                         Init init, List<String> targetModules, String targetRegex, List<String> excludeModules,
                         Bias bias) {

    /** How the adapter's factors are initialised. */
    public enum Init {
        /** loralib/PEFT default: A kaiming-uniform(a=√5), B zeros (Embedding: A zeros, B N(0,1)). */
        DEFAULT,
        /** PEFT's "gaussian": A ~ N(0, 1/r), B zeros (Embedding: as DEFAULT, like PEFT). */
        GAUSSIAN,
        /** Seed 000's parametrization: A ~ N(0, 1), B zeros. */
        NORMAL
    }

    /** Which biases train alongside the adapters (PEFT's {@code bias=}). */
    public enum Bias {
        /** Only lora_ parameters train. */
        NONE,
        /** Every bias of the model trains too. */
        ALL,
        /** The biases of LoRA-wrapped layers train too. */
        LORA_ONLY
    }

    public LoraConfig {
        if (r < 1) throw new IllegalArgumentException("LoRA rank r must be >= 1, got " + r);
        if (!(loraAlpha > 0) || Double.isInfinite(loraAlpha)) {
            throw new IllegalArgumentException("lora_alpha must be finite and > 0, got " + loraAlpha);
        }
        if (!(loraDropout >= 0 && loraDropout < 1)) throw new IllegalArgumentException("lora_dropout must be in [0, 1), got " + loraDropout);
        Objects.requireNonNull(init, "init");
        targetModules = List.copyOf(Objects.requireNonNull(targetModules, "targetModules"));
        excludeModules = List.copyOf(Objects.requireNonNull(excludeModules, "excludeModules"));
        Objects.requireNonNull(bias, "bias");
        if (targetRegex != null) java.util.regex.Pattern.compile(targetRegex);
    }

    /** Rank {@code r} with α = r (scale 1), everything else at PEFT's defaults. */
    public static LoraConfig of(int r) {
        return new LoraConfig(r, r, 0, false, false, Init.DEFAULT, List.of(), null, List.of(), Bias.NONE);
    }

    /** Rank {@code r} and α {@code alpha}. */
    public static LoraConfig of(int r, double alpha) {
        return of(r).withAlpha(alpha);
    }

    /** The scale of the update: α/r, or α/√r with rsLoRA. */
    public double scaling() {
        return useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r;
    }

    public LoraConfig withR(int v) {
        return new LoraConfig(v, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withAlpha(double v) {
        return new LoraConfig(r, v, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withDropout(double v) {
        return new LoraConfig(r, loraAlpha, v, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withFanInFanOut(boolean v) {
        return new LoraConfig(r, loraAlpha, loraDropout, v, useRslora, init, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withRslora(boolean v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, v, init, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withInit(Init v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, v, targetModules, targetRegex, excludeModules, bias);
    }

    public LoraConfig withTargetModules(String... v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, List.of(v), targetRegex, excludeModules, bias);
    }

    public LoraConfig withTargetRegex(String v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, v, excludeModules, bias);
    }

    public LoraConfig withExcludeModules(String... v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, List.of(v), bias);
    }

    public LoraConfig withBias(Bias v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, v);
    }
}
