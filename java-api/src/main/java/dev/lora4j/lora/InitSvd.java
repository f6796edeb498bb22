package dev.lora4j.lora;

import dev.lora4j.DType;
import dev.lora4j.Linalg;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.Arrays;

/**
 * The initialisations that start the adapter from the base weight and move that part out of it,
 * as PEFT's {@code pissa_init} and {@code olora_init}, so the layer's output at step 0 equals the
 * base layer's. W is taken in (out, in) layout (transposed for fan_in_fan_out) and in float32:
 * <ul>
 *   <li>PiSSA ({@code "pissa"}): W = U·diag(S)·Vᵀ; with S' = S_r / s,
 *       A = diag(√S')·V_rᵀ, B = U_r·diag(√S').
 *   <li>PiSSA with {@code niter} ({@code "pissa_niter_n"}): U_r, S_r, V_r from a randomized SVD
 *       (torch's {@code svd_lowrank(W, q=r, niter=n)}: a Gaussian sketch, n power iterations
 *       with re-orthonormalisation, then the SVD of the r-row projection); random, seed with
 *       {@link Torch#manualSeed}.
 *   <li>OLoRA ({@code "olora"}): W = Q·R; A = R_r (first r rows), B = Q_r (first r columns).
 * </ul>
 * Then W ← W − s·B·A, rounded once to W's dtype. Stateless and thread-safe; changes the base
 * weight, so call it while no forward runs (as adapter creation requires anyway).
 */
final class InitSvd {

    private InitSvd() {}

    /** Whether {@code config} asks for an init this class does. */
    static boolean handles(LoraConfig config) {
        return config.init() == LoraConfig.Init.PISSA || config.init() == LoraConfig.Init.OLORA;
    }

    /**
     * Fills A (r, in) and B (out, r) from {@code stored} (the base weight, (out, in) or (in, out)
     * with {@code fanInFanOut}) and subtracts s·B·A from it.
     *
     * @throws IllegalArgumentException when r exceeds min(out, in) or the weight is not floating point
     */
    static void init(LoraConfig config, Tensor stored, boolean fanInFanOut, Tensor a, Tensor b) {
        check(config, stored);
        int r = config.r();
        double s = config.scaling();
        try (var ng = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            Tensor w = (fanInFanOut ? stored.t() : stored).to(DType.FLOAT32);
            Tensor newA;
            Tensor newB;
            if (config.init() == LoraConfig.Init.OLORA) {
                Linalg.Qr qr = Linalg.qr(w);
                newA = qr.r().narrow(0, 0, r);
                newB = qr.q().narrow(1, 0, r);
            } else {
                Tensor[] usv = config.pissaNiter() == 0 ? exactSvd(w, r) : lowRankSvd(w, r, config.pissaNiter());
                Tensor root = usv[1].div(s).sqrt(); // √(S_r / s)
                newA = usv[2].mul(root.unsqueeze(1)); // diag(√S')·V_rᵀ
                newB = usv[0].mul(root.unsqueeze(0)); // U_r·diag(√S')
            }
            a.copy_(newA);
            b.copy_(newB);
            Tensor residual = w.sub(b.to(DType.FLOAT32).matmul(a.to(DType.FLOAT32)), s);
            stored.copy_(fanInFanOut ? residual.t() : residual);
        }
    }

    /**
     * Checks, before anything is created, that {@code config}'s init can run on {@code stored}.
     *
     * @throws IllegalArgumentException when r exceeds min(out, in) or the weight is not floating point
     */
    static void check(LoraConfig config, Tensor stored) {
        DType dt = stored.dtype();
        if (dt != DType.FLOAT32 && dt != DType.FLOAT16 && dt != DType.BFLOAT16 && dt != DType.FLOAT64) {
            throw new IllegalArgumentException(config.init() + " init needs a floating-point base weight, got " + dt);
        }
        long k = Math.min(stored.size(0), stored.size(1));
        if (config.r() > k) {
            throw new IllegalArgumentException(config.init() + " init needs r <= min(out, in) = " + k + ", got r = " + config.r()
                    + " for a weight of shape " + Arrays.toString(stored.shape()));
        }
    }

    /** U_r (out, r), S_r (r), V_rᵀ (r, in) of the exact reduced SVD. */
    private static Tensor[] exactSvd(Tensor w, int r) {
        Linalg.Svd svd = Linalg.svd(w);
        return new Tensor[] {svd.u().narrow(1, 0, r), svd.s().narrow(0, 0, r), svd.vh().narrow(0, 0, r)};
    }

    /**
     * torch's {@code svd_lowrank(w, q=r, niter)} for a matrix: Q spans W·G (G Gaussian (in, r)),
     * refined {@code niter} times by Q ← orth(W·orth(Wᵀ·Q)); then W ≈ Q·(QᵀW) and the SVD of the
     * small QᵀW gives the factors.
     */
    private static Tensor[] lowRankSvd(Tensor w, int r, int niter) {
        Tensor q = Linalg.qr(w.matmul(Tensor.randn(w.size(1), r))).q();
        for (int i = 0; i < niter; i++) {
            Tensor p = Linalg.qr(w.t().matmul(q)).q();
            q = Linalg.qr(w.matmul(p)).q();
        }
        Linalg.Svd small = Linalg.svd(q.t().matmul(w));
        return new Tensor[] {q.matmul(small.u()), small.s(), small.vh()};
    }
}
