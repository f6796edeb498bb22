package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@code clipGradNorm_} against a plain-Java reference of {@code torch.nn.utils.clip_grad_norm_}:
 * the total norm over all gradients, the scale {@code maxNorm / (total + 1e-6)} when that is
 * below 1, parameters without a gradient skipped, and PyTorch's non-finite behaviour.
 */
class GradClipTest {

    private final List<Tensor> owned = new ArrayList<>();

    @AfterEach
    void close() {
        owned.forEach(Tensor::close);
    }

    /** A float64 parameter of {@code values.length} elements whose gradient is {@code grad} (null: none). */
    private Tensor param(double[] grad, int n) {
        Tensor p = Tensor.zeros(DType.FLOAT64, n).requiresGrad_(true);
        owned.add(p);
        if (grad != null) {
            try (Tensor c = Tensor.of(grad, n); Tensor prod = p.mul(c); Tensor loss = prod.sum()) {
                loss.backward();
            }
        }
        return p;
    }

    private static double[] grad(Tensor p) {
        try (Tensor g = p.grad()) {
            return g.toDoubleArray();
        }
    }

    /** The reference: the p-norm of all values together (max |x| for p = ∞). */
    private static double refNorm(double p, double[]... gs) {
        double acc = 0;
        for (double[] g : gs) {
            for (double x : g) acc = p == Double.POSITIVE_INFINITY ? Math.max(acc, Math.abs(x)) : acc + Math.pow(Math.abs(x), p);
        }
        return p == Double.POSITIVE_INFINITY ? acc : Math.pow(acc, 1 / p);
    }

    private static final double[] G1 = {3.0, -4.0, 0.5};
    private static final double[] G2 = {-1.5, 2.0};

    @Test
    void clipsToMaxNormForEveryNormType() {
        for (double p : new double[] {2.0, 1.0, 3.0, 0.5, Double.POSITIVE_INFINITY}) {
            Tensor a = param(G1, 3);
            Tensor none = param(null, 4);
            Tensor b = param(G2, 2);
            double ref = refNorm(p, G1, G2);
            double max = 1.25;
            double total = GradClip.clipGradNorm_(List.of(a, none, b), max, p);
            assertEquals(ref, total, 1e-12 * ref, "total norm, p = " + p);
            double coef = max / (ref + 1e-6);
            for (int i = 0; i < G1.length; i++) assertEquals(G1[i] * coef, grad(a)[i], 1e-12, "p = " + p);
            for (int i = 0; i < G2.length; i++) assertEquals(G2[i] * coef, grad(b)[i], 1e-12, "p = " + p);
            assertNull(none.grad(), "a parameter without gradient stays without");
            assertEquals(max, refNorm(p, grad(a), grad(b)), 1e-5, "the clipped norm, p = " + p);
        }
    }

    @Test
    void leavesGradientsBelowMaxNormAlone() {
        Tensor a = param(G1, 3);
        double total = GradClip.clipGradNorm_(List.of(a), 100.0);
        assertEquals(Math.sqrt(9 + 16 + 0.25), total, 1e-12);
        assertArrayEquals(G1, grad(a), 0.0);
    }

    @Test
    void float32GradientsAreClippedToo() {
        Tensor p = Tensor.zeros(DType.FLOAT32, 3).requiresGrad_(true);
        owned.add(p);
        try (Tensor c = Tensor.of(new float[] {3f, -4f, 12f}, 3); Tensor prod = p.mul(c); Tensor loss = prod.sum()) {
            loss.backward();
        }
        assertEquals(13.0, GradClip.clipGradNorm_(List.of(p), 1.3), 1e-6);
        assertArrayEquals(new double[] {0.3, -0.4, 1.2}, grad(p), 1e-6);
    }

    @Test
    void noGradientsGiveZero() {
        assertEquals(0.0, GradClip.clipGradNorm_(List.of(param(null, 2)), 1.0));
        assertEquals(0.0, GradClip.clipGradNorm_(List.of(), 1.0));
    }

    @Test
    void nonFiniteNormsFollowPyTorchsDefault() {
        // infinite total: coefficient max / inf = 0, so finite entries become 0 and infinite ones NaN
        Tensor a = param(new double[] {Double.POSITIVE_INFINITY, 1.0}, 2);
        Tensor b = param(new double[] {2.0}, 1);
        assertEquals(Double.POSITIVE_INFINITY, GradClip.clipGradNorm_(List.of(a, b), 1.0));
        assertTrue(Double.isNaN(grad(a)[0]));
        assertEquals(0.0, grad(a)[1]);
        assertEquals(0.0, grad(b)[0]);
        // NaN total: every gradient becomes NaN
        Tensor c = param(new double[] {Double.NaN, 1.0}, 2);
        Tensor d = param(new double[] {2.0}, 1);
        assertTrue(Double.isNaN(GradClip.clipGradNorm_(List.of(c, d), 1.0, Double.POSITIVE_INFINITY)));
        assertTrue(Double.isNaN(grad(d)[0]));
        // errorIfNonfinite: refused before anything changes
        Tensor e = param(new double[] {Double.NaN, 1.0}, 2);
        Tensor f = param(new double[] {2.0}, 1);
        assertThrows(IllegalStateException.class, () -> GradClip.clipGradNorm_(List.of(e, f), 1.0, 2.0, true));
        assertEquals(2.0, grad(f)[0]);
    }

    @Test
    void badArgumentsAreRefusedByName() {
        Tensor a = param(G1, 3);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm_(List.of(a), -1)).getMessage().contains("maxNorm"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm_(List.of(a), Double.NaN)).getMessage().contains("maxNorm"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm_(List.of(a), 1, 0)).getMessage().contains("normType"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm_(List.of(a), 1, Double.NaN)).getMessage().contains("normType"));
        assertArrayEquals(G1, grad(a), 0.0);
    }
}
