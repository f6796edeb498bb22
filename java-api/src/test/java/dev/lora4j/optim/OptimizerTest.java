package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.util.List;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;

/**
 * Optimizer steps on a tiny float64 parameter, compared with the update rules of LibTorch 1.13's
 * {@code torch::optim} (= PyTorch's) recomputed by hand in Java.
 */
class OptimizerTest {

    private static final double TOL = 1e-12;
    private static final double[] P0 = {1.0, -2.0, 0.5};

    /** Coefficients for loss = sum(c_t * p), so that the gradient at step t is c_t. */
    private static final double[][] C = {{3.0, -1.0, 0.5}, {0.1, -4.0, 0.01}, {0.2, 0.2, -0.2}};

    private static Tensor param() {
        return Tensor.of(P0.clone(), 3).requiresGrad_(true);
    }

    /** loss = sum(p^2): gradient 2p. */
    private static void backwardSquare(Tensor p) {
        p.mul(p).sum().backward();
    }

    /** loss = sum(c * p): gradient c. */
    private static void backwardLinear(Tensor p, double[] c) {
        p.mul(Tensor.of(c, 3)).sum().backward();
    }

    private static double[] add(double[] a, double[] b, double alpha) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i] + alpha * b[i];
        return r;
    }

    private static double[] scale(double[] a, double s) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i] * s;
        return r;
    }

    // ------------------------------------------------------------------ SGD by hand

    /** torch.optim.SGD: g += wd p; buf = g (first) or m buf + (1-d) g; g = nesterov ? g + m buf : buf; p -= lr g. */
    private static final class SgdRef {
        final double lr, momentum, dampening, wd;
        final boolean nesterov;
        double[] buf;

        SgdRef(double lr, double momentum, double dampening, double wd, boolean nesterov) {
            this.lr = lr;
            this.momentum = momentum;
            this.dampening = dampening;
            this.wd = wd;
            this.nesterov = nesterov;
        }

        double[] step(double[] p, double[] grad) {
            double[] g = wd != 0 ? add(grad, p, wd) : grad.clone();
            if (momentum != 0) {
                if (buf == null) {
                    buf = g.clone();
                } else {
                    buf = add(scale(buf, momentum), g, 1 - dampening);
                }
                g = nesterov ? add(g, buf, momentum) : buf.clone();
            }
            return add(p, g, -lr);
        }
    }

    /** Runs {@code steps} steps of {@code opt} and of {@code ref}, gradient from {@code grad(step, p)}. */
    private static void compareSteps(SGD.Options o, int steps, boolean square) {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            SgdRef ref = new SgdRef(o.lr(), o.momentum(), o.dampening(), o.weightDecay(), o.nesterov());
            double[] expected = P0.clone();
            try (SGD opt = new SGD(List.of(p), o)) {
                for (int t = 0; t < steps; t++) {
                    opt.zeroGrad();
                    double[] g;
                    if (square) {
                        backwardSquare(p);
                        g = scale(expected, 2);
                    } else {
                        backwardLinear(p, C[t]);
                        g = C[t];
                    }
                    assertArrayEquals(g, p.grad().toDoubleArray(), TOL, "gradient at step " + (t + 1));
                    opt.step();
                    expected = ref.step(expected, g);
                    assertArrayEquals(expected, p.toDoubleArray(), TOL, o + ", step " + (t + 1));
                }
            }
            assertTrue(p.isLeaf() && p.requiresGrad(), "the parameter stays a trainable leaf");
        }
    }

    @Test
    void sgdPlain() {
        compareSteps(SGD.lr(0.1), 3, true);
        // and a pinned value: p <- p - 0.1 * 2p = 0.8 p, three times
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            try (SGD opt = new SGD(List.of(p), 0.1)) {
                for (int t = 0; t < 3; t++) {
                    opt.zeroGrad();
                    backwardSquare(p);
                    opt.step();
                }
            }
            assertArrayEquals(new double[] {0.512, -1.024, 0.256}, p.toDoubleArray(), TOL);
        }
    }

    @Test
    void sgdMomentum() {
        compareSteps(SGD.lr(0.1).momentum(0.9), 3, false);
        compareSteps(SGD.lr(0.1).momentum(0.9), 3, true);
        // Pinned by hand for the first coordinate, gradients 3, 0.1, 0.2:
        // buf1 = 3, p = 1 - 0.3 = 0.7; buf2 = 2.7 + 0.1 = 2.8, p = 0.42; buf3 = 2.52 + 0.2 = 2.72, p = 0.148
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            try (SGD opt = new SGD(List.of(p), SGD.lr(0.1).momentum(0.9))) {
                for (int t = 0; t < 3; t++) {
                    opt.zeroGrad();
                    backwardLinear(p, C[t]);
                    opt.step();
                }
            }
            assertEquals(0.148, p.toDoubleArray()[0], TOL);
        }
    }

    @Test
    void sgdMomentumWithDampeningStartsTheBufferAtTheGradient() {
        // PyTorch: the first step sets buf = g, undamped; dampening applies from the second step.
        compareSteps(SGD.lr(0.1).momentum(0.9).dampening(0.5), 3, false);
    }

    @Test
    void sgdNesterov() {
        compareSteps(SGD.lr(0.1).momentum(0.9).nesterov(true), 3, false);
        compareSteps(SGD.lr(0.05).momentum(0.5).nesterov(true), 3, true);
    }

    @Test
    void sgdWeightDecay() {
        compareSteps(SGD.lr(0.1).weightDecay(0.1), 3, false);
        compareSteps(SGD.lr(0.1).momentum(0.9).weightDecay(0.01), 3, true);
        compareSteps(SGD.lr(0.1).momentum(0.9).weightDecay(0.05).nesterov(true), 3, false);
    }

    // ------------------------------------------------------------------ Adam by hand

    /**
     * LibTorch 1.13's Adam/AdamW step: (AdamW: p *= 1 - lr wd) (Adam: g += wd p);
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; (amsgrad: vmax = max(vmax, v), used for v);
     * denom = sqrt(v) / sqrt(1 - b2^t) + eps; p -= lr / (1 - b1^t) · m / denom.
     */
    private static final class AdamRef {
        final Adam.Options o;
        final boolean decoupled;
        double[] m = new double[3], v = new double[3], vmax = new double[3];
        int t;

        AdamRef(Adam.Options o, boolean decoupled) {
            this.o = o;
            this.decoupled = decoupled;
        }

        double[] step(double[] p0, double[] grad) {
            double[] p = p0.clone();
            double[] g = grad.clone();
            t++;
            double bc1 = 1 - Math.pow(o.beta1(), t);
            double bc2 = 1 - Math.pow(o.beta2(), t);
            if (o.weightDecay() != 0) {
                if (decoupled) {
                    for (int i = 0; i < 3; i++) p[i] *= 1 - o.lr() * o.weightDecay();
                } else {
                    g = add(g, p, o.weightDecay());
                }
            }
            for (int i = 0; i < 3; i++) {
                m[i] = o.beta1() * m[i] + (1 - o.beta1()) * g[i];
                v[i] = o.beta2() * v[i] + (1 - o.beta2()) * g[i] * g[i];
                double vv = v[i];
                if (o.amsgrad()) {
                    vmax[i] = Math.max(vmax[i], v[i]);
                    vv = vmax[i];
                }
                double denom = Math.sqrt(vv) / Math.sqrt(bc2) + o.eps();
                p[i] -= o.lr() / bc1 * m[i] / denom;
            }
            return p;
        }
    }

    private static double[] runAdam(BiFunction<List<Tensor>, Adam.Options, Adam> make, Adam.Options o,
                                    boolean decoupled, boolean square, int steps) {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            AdamRef ref = new AdamRef(o, decoupled);
            double[] expected = P0.clone();
            try (Adam opt = make.apply(List.of(p), o)) {
                for (int t = 0; t < steps; t++) {
                    opt.zeroGrad();
                    double[] g;
                    if (square) {
                        backwardSquare(p);
                        g = scale(expected, 2);
                    } else {
                        backwardLinear(p, C[t]);
                        g = C[t];
                    }
                    opt.step();
                    expected = ref.step(expected, g);
                    assertArrayEquals(expected, p.toDoubleArray(), TOL,
                            (decoupled ? "AdamW " : "Adam ") + o + ", step " + (t + 1));
                }
            }
            return p.toDoubleArray();
        }
    }

    @Test
    void adam() {
        runAdam(Adam::new, Adam.lr(0.1), false, false, 3);
        double[] p = runAdam(Adam::new, Adam.lr(0.1), false, true, 3);
        // Pinned: with a gradient of constant sign, Adam's first step moves each coordinate by
        // lr·m̂/(sqrt(v̂)+eps) = 0.1·g/(|g|+1e-8) ≈ 0.1 (bias correction makes m̂ = g, v̂ = g²).
        try (TensorScope s = TensorScope.open()) {
            Tensor q = param();
            try (Adam opt = new Adam(List.of(q), 0.1)) {
                backwardSquare(q);
                opt.step();
            }
            assertArrayEquals(new double[] {0.9, -1.9, 0.4}, q.toDoubleArray(), 1e-8);
        }
        assertEquals(3, p.length);
    }

    @Test
    void adamWithOtherBetasAndEps() {
        runAdam(Adam::new, Adam.lr(0.05).betas(0.8, 0.99).eps(1e-3), false, false, 3);
    }

    @Test
    void adamWeightDecayIsAddedToTheGradient() {
        runAdam(Adam::new, Adam.lr(0.1).weightDecay(0.1), false, false, 3);
        runAdam(Adam::new, Adam.lr(0.1).weightDecay(0.5), false, true, 3);
    }

    @Test
    void adamAmsgrad() {
        runAdam(Adam::new, Adam.lr(0.1).amsgrad(true), false, false, 3);
        runAdam(Adam::new, Adam.lr(0.1).amsgrad(true).weightDecay(0.1), false, false, 3);
        // With beta2 = 0.5 the second moment follows the shrinking gradients (coordinates 0 and 2
        // after step 1) closely, so the running max matters a lot: the amsgrad trajectory must
        // differ clearly from plain Adam's, or this test could not tell them apart.
        Adam.Options ams = Adam.lr(0.1).betas(0.9, 0.5).amsgrad(true);
        double[] withAms = runAdam(Adam::new, ams, false, false, 3);
        AdamRef plain = new AdamRef(ams.amsgrad(false), false);
        double[] q = P0.clone();
        for (int t = 0; t < 3; t++) q = plain.step(q, C[t]);
        double diff = 0;
        for (int i = 0; i < 3; i++) diff = Math.max(diff, Math.abs(q[i] - withAms[i]));
        assertTrue(diff > 1e-3, "amsgrad changes the result here (by " + diff + ")");
    }

    @Test
    void adamWDecaysTheParameterBeforeTheUpdate() {
        runAdam(AdamW::new, Adam.lr(0.1).weightDecay(0.1), true, false, 3);
        runAdam(AdamW::new, Adam.lr(0.1).weightDecay(0.1), true, true, 3);
        runAdam(AdamW::new, Adam.lr(0.1).weightDecay(0.1).amsgrad(true), true, false, 3);
        // AdamW's default weight decay is PyTorch's 0.01.
        assertEquals(0.01, AdamW.lr(0.1).weightDecay());
        assertEquals(0.0, Adam.lr(0.1).weightDecay());
        assertEquals(0.9, Adam.lr(0.1).beta1());
        assertEquals(0.999, Adam.lr(0.1).beta2());
        assertEquals(1e-8, Adam.lr(0.1).eps());
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            AdamRef ref = new AdamRef(AdamW.lr(0.1), true);
            try (AdamW opt = new AdamW(List.of(p), 0.1)) {
                backwardLinear(p, C[0]);
                opt.step();
            }
            assertArrayEquals(ref.step(P0, C[0]), p.toDoubleArray(), TOL, "new AdamW(params, lr) decays by 0.01");
            // decoupled decay differs from Adam's L2 decay
            AdamRef l2 = new AdamRef(Adam.lr(0.1).weightDecay(0.01), false);
            assertFalse(java.util.Arrays.equals(l2.step(P0, C[0]), p.toDoubleArray()));
        }
    }

    // ------------------------------------------------------------------ bookkeeping

    @Test
    void zeroGradDropsOrZeroesGradients() {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            Tensor other = Tensor.of(new double[] {5, 6}, 2).requiresGrad_(true);
            try (SGD opt = new SGD(List.of(p, other), 0.1)) {
                assertEquals(List.of(p, other), opt.params());
                backwardSquare(p);
                assertNotNull(p.grad());
                assertNull(other.grad());
                opt.zeroGrad();
                assertNull(p.grad(), "zeroGrad() sets gradients to none");

                backwardSquare(p);
                opt.zeroGrad(false);
                assertArrayEquals(new double[] {0, 0, 0}, p.grad().toDoubleArray(), "zeroGrad(false) fills zeros");
                opt.step();
                assertArrayEquals(P0, p.toDoubleArray(), "a zero gradient does not move plain SGD");

                // A parameter without a gradient is skipped; gradients accumulate after zeroGrad(false).
                backwardLinear(p, C[0]);
                assertArrayEquals(C[0], p.grad().toDoubleArray(), TOL);
                opt.step();
                assertArrayEquals(add(P0, C[0], -0.1), p.toDoubleArray(), TOL);
                assertArrayEquals(new double[] {5, 6}, other.toDoubleArray(), "no gradient, no update");
            }
            // Adam skips a parameter without a gradient too (and does not count a step for it).
            Tensor q = param();
            try (Adam opt = new Adam(List.of(q), 0.1)) {
                opt.step();
                assertArrayEquals(P0, q.toDoubleArray());
                backwardLinear(q, C[0]);
                opt.step();
                assertArrayEquals(new AdamRef(Adam.lr(0.1), false).step(P0, C[0]), q.toDoubleArray(), TOL,
                        "the first real step is step 1 of Adam's bias correction");
            }
        }
    }

    @Test
    void learningRateCanBeReadAndChanged() {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            try (SGD opt = new SGD(List.of(p), 0.05)) {
                assertEquals(0.05, opt.lr());
                opt.setLr(0.2);
                assertEquals(0.2, opt.lr());
                backwardLinear(p, C[0]);
                opt.step();
                assertArrayEquals(add(P0, C[0], -0.2), p.toDoubleArray(), TOL, "the step uses the new lr");
                assertThrows(IllegalArgumentException.class, () -> opt.setLr(-1));
                assertThrows(IllegalArgumentException.class, () -> opt.setLr(Double.NaN));
                assertEquals(0.2, opt.lr(), "a rejected lr leaves the old one");
            }
            Tensor q = param();
            try (Adam opt = new Adam(List.of(q), Adam.lr(0.1))) {
                assertEquals(0.1, opt.lr());
                opt.setLr(0.01);
                assertEquals(0.01, opt.lr());
                backwardLinear(q, C[0]);
                opt.step();
                assertArrayEquals(new AdamRef(Adam.lr(0.01), false).step(P0, C[0]), q.toDoubleArray(), TOL);
            }
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            Tensor frozen = Tensor.of(new double[] {1, 2}, 2);
            Tensor nonLeaf = p.mul(2.0);
            var e1 = assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(), 0.1));
            assertTrue(e1.getMessage().contains("at least one"), e1.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new Adam(List.of(), 0.1));
            var e2 = assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(p, frozen), 0.1));
            assertTrue(e2.getMessage().contains("params[1]"), e2.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new Adam(List.of(nonLeaf), 0.1), "non-leaf");
            assertThrows(IllegalArgumentException.class, () -> new AdamW(List.of(frozen), 0.1));
            assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(p), -0.1));
            assertThrows(IllegalArgumentException.class, () -> new Adam(List.of(p), -1e-3));
            assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(p), Double.NaN));
            var e3 = assertThrows(IllegalArgumentException.class, () -> SGD.lr(0.1).nesterov(true));
            assertTrue(e3.getMessage().toLowerCase().contains("nesterov"), e3.getMessage());
            assertThrows(IllegalArgumentException.class, () -> SGD.lr(0.1).momentum(0.9).dampening(0.1).nesterov(true),
                    "nesterov needs zero dampening");
            assertThrows(IllegalArgumentException.class, () -> SGD.lr(0.1).momentum(-0.5));
            assertThrows(IllegalArgumentException.class, () -> SGD.lr(0.1).weightDecay(-1));
            assertThrows(IllegalArgumentException.class, () -> Adam.lr(0.1).betas(1.0, 0.999));
            assertThrows(IllegalArgumentException.class, () -> Adam.lr(0.1).betas(0.9, -0.1));
            assertThrows(IllegalArgumentException.class, () -> Adam.lr(0.1).eps(-1));
            assertThrows(IllegalArgumentException.class, () -> Adam.lr(0.1).weightDecay(-0.01));
            assertThrows(NullPointerException.class, () -> new SGD(null, 0.1));
        }
    }

    @Test
    void closedOptimizerRefusesWork() {
        try (TensorScope s = TensorScope.open()) {
            Tensor p = param();
            SGD sgd = new SGD(List.of(p), 0.1);
            Adam adam = new Adam(List.of(p), 0.1);
            sgd.close();
            adam.close();
            backwardSquare(p);
            assertThrows(IllegalStateException.class, sgd::step);
            assertThrows(IllegalStateException.class, adam::step);
            assertThrows(IllegalStateException.class, sgd::zeroGrad);
            assertThrows(IllegalStateException.class, sgd::lr);
            assertThrows(IllegalStateException.class, () -> adam.setLr(0.5));
            sgd.close(); // idempotent
            assertArrayEquals(P0, p.toDoubleArray(), "nothing moved");
            assertFalse(p.isClosed(), "closing an optimizer leaves the parameter alone");
            assertArrayEquals(scale(P0, 2), p.grad().toDoubleArray(), TOL, "nor its gradient");
        }
    }
}
