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
 * @param useDora DoRA (PEFT's {@code use_dora}): a trained magnitude per output row rescales
 *     W + s·B·A to m / ‖W + s·B·A‖ (see {@link DoraLinearLayer}); Linear layers only
 * @param pissaNiter with {@link Init#PISSA}: 0 for the exact SVD ({@code "pissa"}), n ≥ 1 for a
 *     randomized SVD with n subspace iterations ({@code "pissa_niter_n"})
 */
public record LoraConfig(int r, double loraAlpha, double loraDropout, boolean fanInFanOut, boolean useRslora,
                         Init init, List<String> targetModules, String targetRegex, List<String> excludeModules,
                         Bias bias, boolean useDora, int pissaNiter) {

    /** How the adapter's factors are initialised. */
    public enum Init {
        /** loralib/PEFT default: A kaiming-uniform(a=√5), B zeros (Embedding: A zeros, B N(0,1)). */
        DEFAULT,
        /** PEFT's "gaussian": A ~ N(0, 1/r), B zeros (Embedding: as DEFAULT, like PEFT). */
        GAUSSIAN,
        /** Seed 000's parametrization: A ~ N(0, 1), B zeros. */
        NORMAL,
        /**
         * PEFT's "pissa": A and B from the top-r SVD of W (A = √(S_r/s)·V_rᵀ, B = U_r·√(S_r/s)) and
         * W ← W − s·B·A, so the output is unchanged at step 0. Changes the base weight; Linear only.
         */
        PISSA,
        /** PEFT's "olora": Q, R = qr(W); A = R_r, B = Q_r and W ← W − s·B·A. Changes the base weight; Linear only. */
        OLORA
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
        if (pissaNiter < 0) throw new IllegalArgumentException("pissa niter must be >= 0, got " + pissaNiter);
        if (pissaNiter > 0 && init != Init.PISSA) throw new IllegalArgumentException("pissa niter " + pissaNiter + " needs init PISSA, got " + init);
    }

    /** The settings without DoRA and with the exact SVD for PiSSA (the components before those two). */
    public LoraConfig(int r, double loraAlpha, double loraDropout, boolean fanInFanOut, boolean useRslora, Init init,
                      List<String> targetModules, String targetRegex, List<String> excludeModules, Bias bias) {
        this(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias, false, 0);
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
        return new LoraConfig(v, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withAlpha(double v) {
        return new LoraConfig(r, v, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withDropout(double v) {
        return new LoraConfig(r, loraAlpha, v, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withFanInFanOut(boolean v) {
        return new LoraConfig(r, loraAlpha, loraDropout, v, useRslora, init, targetModules, targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withRslora(boolean v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, v, init, targetModules, targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withInit(Init v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, v, targetModules, targetRegex, excludeModules, bias, useDora,
                v == Init.PISSA ? pissaNiter : 0);
    }

    public LoraConfig withTargetModules(String... v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, List.of(v), targetRegex, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withTargetRegex(String v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, v, excludeModules, bias, useDora, pissaNiter);
    }

    public LoraConfig withExcludeModules(String... v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, List.of(v), bias, useDora, pissaNiter);
    }

    public LoraConfig withBias(Bias v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, v, useDora, pissaNiter);
    }

    /** DoRA on or off (PEFT's {@code use_dora}). */
    public LoraConfig withUseDora(boolean v) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, init, targetModules, targetRegex, excludeModules, bias, v, pissaNiter);
    }

    /** PiSSA with a randomized SVD of {@code niter} subspace iterations (PEFT's {@code "pissa_niter_<niter>"}); 0: exact SVD. */
    public LoraConfig withPissaNiter(int niter) {
        return new LoraConfig(r, loraAlpha, loraDropout, fanInFanOut, useRslora, Init.PISSA, targetModules, targetRegex, excludeModules, bias, useDora,
                niter);
    }

    /** PEFT's {@code init_lora_weights} value for the init modes that have a string ("gaussian", "pissa_niter_4", ...), else "true". */
    public String initLoraWeights() {
        return switch (init) {
            case DEFAULT -> "true";
            case GAUSSIAN -> "gaussian";
            case NORMAL -> "normal";
            case PISSA -> pissaNiter == 0 ? "pissa" : "pissa_niter_" + pissaNiter;
            case OLORA -> "olora";
        };
    }

    /**
     * The init mode PEFT's {@code init_lora_weights} string names: "true"/"false"-like values
     * other than the ones below give DEFAULT; "gaussian", "normal", "pissa", "pissa_niter_&lt;n&gt;", "olora".
     *
     * @throws IllegalArgumentException for a PiSSA variant with a bad iteration count
     */
    public LoraConfig withInitLoraWeights(String v) {
        java.util.Objects.requireNonNull(v, "init_lora_weights");
        if (v.startsWith("pissa_niter_")) {
            int n;
            try {
                n = Integer.parseInt(v.substring("pissa_niter_".length()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("init_lora_weights '" + v + "': the iteration count is not an integer");
            }
            if (n < 1) throw new IllegalArgumentException("init_lora_weights '" + v + "': the iteration count must be >= 1");
            return withPissaNiter(n);
        }
        return withInit(switch (v) {
            case "gaussian" -> Init.GAUSSIAN;
            case "normal" -> Init.NORMAL;
            case "pissa" -> Init.PISSA;
            case "olora" -> Init.OLORA;
            default -> Init.DEFAULT;
        });
    }
}
