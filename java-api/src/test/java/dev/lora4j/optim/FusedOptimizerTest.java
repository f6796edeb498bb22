package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.TorchException;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The fused optimizer kernels on float32 parameters large enough to be split across intra-op
 * tasks, against the update rules recomputed in double in Java; and autograd's version check.
 */
class FusedOptimizerTest {

    private static final int N = 100_003; // several 32768-element tasks, and a ragged end

    private static float[] values(int seed) {
        float[] v = new float[N];
        java.util.Random r = new java.util.Random(seed);
        for (int i = 0; i < N; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    @Test
    void adamWithWeightDecayAndAmsgradOnFloat32() {
        for (boolean decoupled : new boolean[] {false, true}) {
            try (TensorScope s = TensorScope.open()) {
                float[] p0 = values(1);
                Tensor p = Tensor.of(p0, N).requiresGrad_(true);
                Adam.Options o = Adam.lr(0.01).weightDecay(0.1).amsgrad(true);
                double[] ref = new double[N], m = new double[N], v = new double[N], vmax = new double[N];
                for (int i = 0; i < N; i++) ref[i] = p0[i];
                try (Adam opt = decoupled ? new AdamW(List.of(p), o) : new Adam(List.of(p), o)) {
                    for (int t = 1; t <= 3; t++) {
                        float[] g = values(10 + t);
                        opt.zeroGrad();
                        p.mul(Tensor.of(g, N)).sum().backward();
                        opt.step();
                        double bc1 = 1 - Math.pow(0.9, t), bc2 = 1 - Math.pow(0.999, t);
                        for (int i = 0; i < N; i++) {
                            double gi = g[i];
                            if (decoupled) ref[i] *= 1 - 0.01 * 0.1;
                            else gi += 0.1 * ref[i];
                            m[i] = 0.9 * m[i] + 0.1 * gi;
                            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                            vmax[i] = Math.max(vmax[i], v[i]);
                            ref[i] -= 0.01 / bc1 * m[i] / (Math.sqrt(vmax[i]) / Math.sqrt(bc2) + 1e-8);
                        }
                    }
                }
                float[] got = p.toFloatArray();
                for (int i = 0; i < N; i++) assertEquals(ref[i], got[i], 1e-5 * (1 + Math.abs(ref[i])), "element " + i);
            }
        }
    }

    @Test
    void sgdWithMomentumOnFloat32() {
        try (TensorScope s = TensorScope.open()) {
            float[] p0 = values(2);
            Tensor p = Tensor.of(p0, N).requiresGrad_(true);
            double[] ref = new double[N], buf = new double[N];
            for (int i = 0; i < N; i++) ref[i] = p0[i];
            try (SGD opt = new SGD(List.of(p), SGD.lr(0.1).momentum(0.9).weightDecay(0.01))) {
                for (int t = 1; t <= 3; t++) {
                    float[] g = values(20 + t);
                    opt.zeroGrad();
                    p.mul(Tensor.of(g, N)).sum().backward();
                    opt.step();
                    for (int i = 0; i < N; i++) {
                        double d = g[i] + 0.01 * ref[i];
                        buf[i] = t == 1 ? d : 0.9 * buf[i] + d;
                        ref[i] -= 0.1 * buf[i];
                    }
                }
            }
            float[] got = p.toFloatArray();
            for (int i = 0; i < N; i++) assertEquals(ref[i], got[i], 1e-5 * (1 + Math.abs(ref[i])), "element " + i);
        }
    }

    @Test
    void aStepChangesTheParameterVersionSoStaleGraphsFail() {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = Tensor.randn(4).requiresGrad_(true);
            try (Adam opt = new Adam(List.of(p), 0.1)) {
                p.mul(p).sum().backward();
                Tensor stale = p.mul(p).sum(); // saves p for backward
                opt.step();                       // changes p in place
                TorchException e = assertThrows(TorchException.class, stale::backward);
                assertTrue(e.getMessage().contains("modified by an inplace operation"), e.getMessage());
            }
        }
    }
}
