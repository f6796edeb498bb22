package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.internal.LoraOps;
import dev.lora4j.nn.Dropout;
import dev.lora4j.nn.Init;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.ModuleDict;
import dev.lora4j.nn.Parametrize;
import java.util.Arrays;
import java.util.List;

/**
 * LoRA around a linear layer: {@code y = base(x) + Σ s·(dropout(x)·Aᵀ)·Bᵀ} over the active
 * adapters, each with A (r, in) and B (out, r) held as PEFT holds them
 * ({@code lora_A.<name>.weight}, {@code lora_B.<name>.weight}, dropout {@code lora_dropout.<name>}).
 * The base is a {@link Linear}, GPT-2's {@link dev.lora4j.nn.HfConv1D}, or any module with a
 * 2-d {@code weight}: (out, in), or (in, out) with {@code fanInFanOut}. As PEFT, the flag is
 * corrected (with a warning) to the base's layout: false for Linear, true for HfConv1D. The
 * factors take the base weight's dtype (float32 for float16/bfloat16 bases, whose LoRA path
 * then runs in float32 and is rounded once into the output). See {@link LoraLayer} for named adapters and
 * merging. Mixed batches in inference run through an {@link AdapterBank} (one fused native
 * call for every row), rebuilt when adapters are added, deleted or their factors change; a
 * layer holding a DoRA adapter runs each adapter on its own rows instead.
 *
 * <p>Variants (PEFT's): {@code use_dora} adds a trained magnitude per output row
 * ({@link DoraLinearLayer}, {@code lora_magnitude_vector.<name>.weight}); init PISSA / OLORA
 * start A and B from the SVD / QR of the base weight and subtract s·B·A from it ({@link InitSvd}).
 * For a DoRA adapter, {@link #deltaWeight(String)} is still s·B·A; merging writes DoRA's W'.
 *
 * <p>Ownership and threads: as every {@link dev.lora4j.nn.Module}: it owns its parameters and
 * frees them on close; eval-mode forwards may run on many threads, changes are single-threaded.
 */
public class LoraLinear extends LoraLayer {

    private final long inFeatures;
    private final long outFeatures;
    private final boolean fanInFanOut;
    private final ModuleDict loraA;
    private final ModuleDict loraB;
    private final ModuleDict dropout;
    /** DoRA magnitudes ({@code lora_magnitude_vector}), registered with the first DoRA adapter. */
    private ModuleDict magnitude;
    private final BankCache bank = new BankCache(this);

    /** Wraps {@code base} with one adapter, {@value LoraLayer#DEFAULT_ADAPTER}. */
    public LoraLinear(Module base, LoraConfig config) {
        this(base, DEFAULT_ADAPTER, config);
    }

    /** Wraps {@code base} with one adapter named {@code adapterName}. */
    public LoraLinear(Module base, String adapterName, LoraConfig config) {
        super(base);
        Tensor w = base.parameter("weight");
        if (w == null || w.dim() != 2) {
            throw new IllegalArgumentException("LoraLinear needs a base layer with a 2-d weight, got "
                    + (w == null ? "none" : Arrays.toString(w.shape())));
        }
        fanInFanOut = layoutOf(base, config).fanInFanOut();
        inFeatures = fanInFanOut ? w.size(0) : w.size(1);
        outFeatures = fanInFanOut ? w.size(1) : w.size(0);
        dropout = registerModule("lora_dropout", new ModuleDict());
        loraA = registerModule("lora_A", new ModuleDict());
        loraB = registerModule("lora_B", new ModuleDict());
        addAdapter(adapterName, config);
    }

    @Override
    protected void createAdapter(String name, LoraConfig config) {
        if (config.fanInFanOut() != fanInFanOut) {
            throw new IllegalArgumentException("adapter '" + name + "' has fan_in_fan_out=" + config.fanInFanOut()
                    + " but the base weight's layout is fan_in_fan_out=" + fanInFanOut);
        }
        int r = config.r();
        DType dtype = factorType();
        Linear a = loraA.put(name, (Linear) new Linear(inFeatures, r, false).to(dtype));
        Linear b = loraB.put(name, (Linear) new Linear(r, outFeatures, false).to(dtype));
        if (InitSvd.handles(config)) InitSvd.init(config, baseWeight(), fanInFanOut, a.weight(), b.weight());
        else initFactors(config, a.weight(), b.weight());
        if (config.loraDropout() > 0) dropout.put(name, new Dropout(config.loraDropout()));
        if (config.useDora()) {
            if (magnitude == null) magnitude = registerModule("lora_magnitude_vector", new ModuleDict());
            try (TensorScope s = TensorScope.open()) { // weightOutIn() is a view for fan_in_fan_out weights
                magnitude.put(name, new DoraLinearLayer(DoraLinearLayer.weightNorm(weightOutIn(), a.weight(), b.weight(), config.scaling()), dtype));
            }
        }
        bank.invalidate();
    }

    @Override
    protected void destroyAdapter(String name) {
        loraA.remove(name).close();
        loraB.remove(name).close();
        if (dropout.containsKey(name)) dropout.remove(name).close();
        if (dora(name) != null) magnitude.remove(name).close();
        bank.invalidate();
    }

    /** DoRA, PiSSA and OLoRA are supported here (checked against the base weight before anything changes). */
    @Override
    protected void checkVariant(LoraConfig config) {
        if (InitSvd.handles(config)) InitSvd.check(config, baseWeight());
    }

    /**
     * Replaces adapter {@code name}'s factors by copies zero-padded to rank {@code rank} (≥ its
     * rank), keeping ΔW and the scale; for {@link Hotswap#prepare}.
     */
    void padRank(String name, int rank, LoraConfig padded) {
        Tensor a = loraA(name);
        Tensor b = loraB(name);
        boolean train = a.requiresGrad();
        Linear na = new Linear(inFeatures, rank, false);
        Linear nb = new Linear(rank, outFeatures, false);
        if (a.dtype() != na.weight().dtype()) {
            na.to(a.dtype());
            nb.to(b.dtype());
        }
        try (var ng = Torch.noGrad(); var s = dev.lora4j.TensorScope.open()) {
            na.weight().zero_().narrow(0, 0, a.size(0)).copy_(a);
            nb.weight().zero_().narrow(1, 0, b.size(1)).copy_(b);
        }
        na.weight().requiresGrad_(train);
        nb.weight().requiresGrad_(train);
        loraA.put(name, na);
        loraB.put(name, nb);
        replaceConfig(name, padded);
        bank.invalidate();
    }

    /** The DoRA magnitude of adapter {@code name}, or null when it is a plain LoRA adapter. */
    public DoraLinearLayer dora(String name) {
        return magnitude != null && magnitude.containsKey(name) ? (DoraLinearLayer) magnitude.get(name) : null;
    }

    /** The base weight in (out, in) layout (a view for fan_in_fan_out weights). */
    private Tensor weightOutIn() {
        return fanInFanOut ? baseWeight().t() : baseWeight();
    }

    @Override
    protected List<Tensor> variantParameters(String name) {
        DoraLinearLayer d = dora(name);
        return d == null ? List.of() : List.of(d.weight());
    }

    /** DoRA adapters merge m ⊙ (W + ΔW)/‖W + ΔW‖ (see {@link DoraLinearLayer}); plain ones use the default. */
    @Override
    protected boolean applyVariant(String name, double sign, boolean safe) {
        DoraLinearLayer d = dora(name);
        if (d == null) return false;
        try (Tensor delta = deltaWeight(factorType(), name)) {
            d.apply(baseWeight(), delta, fanInFanOut, sign, safe, "LoraLinear adapter '" + name + "'");
        }
        return true;
    }

    /** A DoRA adapter's merged weight is m ⊙ (W + ΔW)/‖W + ΔW‖, checked as such before a safe merge. */
    @Override
    protected Tensor mergedWith(Tensor w, String name) {
        DoraLinearLayer d = dora(name);
        return d == null ? super.mergedWith(w, name) : d.mergedWeight(w, deltaWeight(factorType(), name), fanInFanOut);
    }

    static void initFactors(LoraConfig config, Tensor a, Tensor b) {
        try (var ng = Torch.noGrad()) {
            switch (config.init()) {
                case DEFAULT -> Init.kaimingUniform_(a, Math.sqrt(5));
                case GAUSSIAN -> Init.normal_(a, 0, 1.0 / config.r());
                case NORMAL -> Init.normal_(a, 0, 1);
            }
            Init.zeros_(b);
        }
    }

    public long inFeatures() {
        return inFeatures;
    }

    public long outFeatures() {
        return outFeatures;
    }

    /** A of adapter {@code name}, shape (r, in). */
    @Override
    public Tensor loraA(String name) {
        return ((Linear) loraA.get(checked(name))).weight();
    }

    /** B of adapter {@code name}, shape (out, r). */
    @Override
    public Tensor loraB(String name) {
        return ((Linear) loraB.get(checked(name))).weight();
    }

    private String checked(String name) {
        config(name);
        return name;
    }

    @Override
    protected Tensor baseWeight() {
        return baseLayer().parameter("weight");
    }

    @Override
    protected Tensor loraForward(Tensor input, String name) {
        Tensor cast = castInput(input, loraA(name));
        Tensor x = dropout.containsKey(name) ? dropout.get(name).forward(cast) : cast;
        DoraLinearLayer d = dora(name);
        if (d != null) {
            try {
                return d.delta(x, baseWeight(), fanInFanOut, loraA(name), loraB(name), scaling(name));
            } finally {
                if (x != cast) x.close();
                if (cast != input) cast.close();
            }
        }
        try (Tensor down = loraA.get(name).forward(x); Tensor up = loraB.get(name).forward(down)) {
            return up.mul(scaling(name));
        } finally {
            if (x != cast) x.close();
            if (cast != input) cast.close();
        }
    }

    /**
     * A plain {@link Linear} base (not parametrized, not transposed) with a plain LoRA adapter
     * (no DoRA, no dropout in training) of the input's dtype runs as one native call
     * ({@link LoraOps#linear}): with a frozen base in grad mode that is one autograd node which
     * saves only what the adapter's gradients need and never computes one for the base. An
     * input the base refuses takes the unfused path, so it is refused as a plain {@link Linear}
     * refuses it (an IllegalArgumentException naming its shape).
     */
    @Override
    protected Tensor fusedForward(Tensor input, String name) {
        if (fanInFanOut || magnitude != null && dora(name) != null || isTraining() && dropout.containsKey(name)) return null;
        if (!(baseLayer() instanceof Linear base) || base.getClass() != Linear.class || Parametrize.isParametrized(base, "weight")
                || Parametrize.isParametrized(base, "bias")) {
            return null;
        }
        Tensor w = base.weight();
        Tensor a = ((Linear) loraA.get(name)).weight();
        Tensor b = ((Linear) loraB.get(name)).weight();
        DType dtype = input.dtype();
        if (a.dtype() != dtype || w.dtype() != dtype || b.dtype() != dtype) return null;
        // An input the base refuses (a scalar, the wrong in_features) goes to the base, whose
        // Functional.linear names its shape: the fused call would only throw the shim's message.
        if (input.dim() == 0 || input.size(-1) != w.size(1)) return null;
        return LoraOps.linear(input, w, base.bias(), a, b, scaling(name));
    }

    /** One native call ({@code addmm} into the base output), except with dropout in training. */
    @Override
    protected Tensor addAdapter(Tensor base, Tensor input, String name) {
        boolean dropping = isTraining() && dropout.containsKey(name);
        DoraLinearLayer d = dora(name);
        // A float32 path on a float16/bfloat16 base runs through loraForward (input cast as PEFT casts it).
        if (d != null && !dropping && baseIsAlone(name) && input.dtype() == factorType() && base.dtype() == input.dtype()) {
            Module bl = baseLayer();
            Tensor bias = bl.hasParameter("bias") ? bl.parameter("bias") : null;
            Tensor sum = d.addToBase(base, bias, input, baseWeight(), fanInFanOut, loraA(name), loraB(name), scaling(name));
            base.close();
            return sum;
        }
        if (dropping || d != null) return super.addAdapter(base, input, name);
        // name comes from the active list, so the factors are looked up without re-checking it.
        Tensor a = ((Linear) loraA.get(name)).weight();
        Tensor b = ((Linear) loraB.get(name)).weight();
        // A float32 path on a float16/bfloat16 base: cast and add as PEFT does, unfused.
        if (a.dtype() != input.dtype() || a.dtype() != base.dtype()) return super.addAdapter(base, input, name);
        Tensor sum = LoraOps.addDelta(base, input, a, b, scaling(name));
        base.close();
        return sum;
    }

    /** Whether the output so far is the base layer's alone: every active adapter before {@code name} is merged. */
    private boolean baseIsAlone(String name) {
        List<String> merged = isMerged() ? mergedAdapters() : List.of();
        for (String n : activeAdapters()) {
            if (n.equals(name)) return true;
            if (!merged.contains(n)) return false;
        }
        return false;
    }

    /**
     * One fused native call for every row ({@link AdapterBank}) in inference, for inputs of
     * any rank ({@code [batch, seq, in]}: row i's tokens all use its adapter), float32 and
     * float64 factors, either weight layout; an input of another dtype (a float16/bfloat16
     * base's) is cast to the factors' dtype first, as PEFT casts it. Each adapter runs on its
     * own rows, as {@link LoraLayer} does, only where the bank cannot serve exactly: when
     * gradients are needed (training), when dropout is active (training mode), and when the
     * layer holds a DoRA adapter (its magnitude depends on the base weight).
     */
    @Override
    protected Tensor mixedDelta(Tensor input, String[] rows) {
        checkMixed(input, rows);
        boolean needsGraph = Torch.isGradEnabled() && (input.requiresGrad() || anyTrainable());
        boolean dora = magnitude != null && !magnitude.keySet().isEmpty(); // the bank knows no magnitudes: DoRA rows run exactly
        if (needsGraph || dora || (isTraining() && !dropout.keySet().isEmpty()) || input.dim() < 2) {
            return super.mixedDelta(input, rows);
        }
        if (groupRows(rows).isEmpty()) return null;
        return bank.get().delta(input, rowsInBank(rows));
    }

    private boolean anyTrainable() {
        for (String n : adapterNames()) if (loraA(n).requiresGrad() || loraB(n).requiresGrad()) return true;
        return false;
    }

    /** Rows naming an adapter this layer does not hold get the base output, as in PEFT. */
    private String[] rowsInBank(String[] rows) {
        String[] out = rows;
        for (int i = 0; i < rows.length; i++) {
            if (!hasAdapter(rows[i]) && !rows[i].equals(AdapterBank.BASE)) {
                if (out == rows) out = rows.clone();
                out[i] = AdapterBank.BASE;
            }
        }
        return out;
    }

    @Override
    protected Tensor deltaWeight(DType dtype, String name) {
        try (var ng = Torch.noGrad(); var scope = dev.lora4j.TensorScope.open()) {
            Tensor d = loraB(name).to(dtype).matmul(loraA(name).to(dtype)).mul(scaling(name));
            return (fanInFanOut ? d.t() : d).contiguous().keep();
        }
    }

    @Override
    public void close() {
        bank.invalidate();
        super.close();
    }
}
