package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.nn.Functional;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Gradients from {@link Tensor#backward()} checked against central finite differences of the
 * same lora4j forward, evaluated in FLOAT64 on fresh tensors built from perturbed Java copies of
 * the inputs (step {@value #EPS}, tolerance {@value #TOL} relative to the gradient's largest
 * component, at least 1). Covered: linear (x, W, b), conv2d with stride, padding, dilation and
 * groups (input, weight, bias), embedding (weight: the padding_idx row gets no gradient, repeated
 * indices accumulate), and the LoRA expression {@code y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ} with W frozen
 * (A and B get gradients, W none; with B = 0, A's gradient is exactly zero).
 *
 * <p>Every loss is a sum of squares or of products with fixed random weights, so each checked
 * gradient is asserted to be non-zero as well: an all-zero backward cannot pass.
 */
@ExtendWith(ScopePerTest.class)
class GradientTest {

    private static final double EPS = 1e-6;
    private static final double TOL = 1e-6;

    private final Random rnd = new Random(7_2024);

    @Test
    void linearGradientsOfInputWeightAndBias() {
        Input[] in = {
            Input.param("x", gaussian(3 * 4), 3, 4),
            Input.param("W", gaussian(5 * 4), 5, 4),
            Input.param("b", gaussian(5), 5),
        };
        Loss loss = t -> Functional.linear(t[0], t[1], t[2]).pow(2).sum();

        Tensor[] t = tensors(in);
        loss.apply(t).backward();
        for (int k = 0; k < in.length; k++) {
            assertGradientMatches(in[k].name(), t[k].grad(), finiteDifferences(loss, in, k));
        }
    }

    @Test
    void conv2dGradientsWithStridePaddingDilationAndGroups() {
        // batch 2, 4 -> 6 channels in 2 groups, 7×8 input, 3×3 kernel, stride 2, padding 1, dilation 2.
        Input[] in = {
            Input.param("input", gaussian(2 * 4 * 7 * 8), 2, 4, 7, 8),
            Input.param("weight", gaussian(6 * 2 * 3 * 3), 6, 2, 3, 3),
            Input.param("bias", gaussian(6), 6),
        };
        Loss loss = t -> Functional.conv2d(t[0], t[1], t[2], 2, 1, 2, 2).pow(2).sum();

        Tensor[] t = tensors(in);
        loss.apply(t).backward();
        for (int k = 0; k < in.length; k++) {
            assertGradientMatches(in[k].name(), t[k].grad(), finiteDifferences(loss, in, k));
        }
        // Input row 2·oy - 1 + 2·ky is always odd: even rows and columns are never read, and
        // their gradient is exactly zero.
        double[] gx = t[0].grad().toDoubleArray();
        assertEquals(0.0, gx[2 * 8 + 2], "input (0, 0, 2, 2) is never read");
        assertNotEquals(0.0, gx[1 * 8 + 3], "input (0, 0, 1, 3) is read");
    }

    @Test
    void embeddingGradientSkipsThePaddingRowAndAccumulatesRepeatedIndices() {
        int rows = 5, dim = 3, pad = 2;
        long[] idx = {1, 3, 1, 0, 3, 1, 2, 3}; // row 1 and row 3 three times each, row 4 never
        Tensor indices = Tensor.of(idx, 2, 4);
        Input[] in = {
            Input.param("weight", gaussian(rows * dim), rows, dim),
            Input.fixed("r", gaussian(idx.length * dim), 2, 4, dim),
        };
        Loss padded = t -> Functional.embedding(indices, t[0], pad).mul(t[1]).sum();
        Loss unpadded = t -> Functional.embedding(indices, t[0]).mul(t[1]).sum();

        // d/dW[row] sum(E ⊙ R) = the sum of R over the positions that look up row.
        double[] r = in[1].values();
        double[] accumulated = new double[rows * dim];
        for (int p = 0; p < idx.length; p++) {
            for (int j = 0; j < dim; j++) accumulated[(int) idx[p] * dim + j] += r[p * dim + j];
        }

        Tensor[] t = tensors(in);
        padded.apply(t).backward();
        double[] g = t[0].grad().toDoubleArray();
        double[] expected = accumulated.clone();
        for (int j = 0; j < dim; j++) {
            assertEquals(0.0, g[pad * dim + j], "the padding row gets no gradient");
            assertEquals(0.0, g[4 * dim + j], "an unused row gets no gradient");
            expected[pad * dim + j] = 0;
        }
        NumericsTest.assertAllClose("embedding grad, closed form", expected, g, 1e-12);
        // Finite differences do see the padding row (the forward uses it): compare the others.
        double[] numeric = finiteDifferences(padded, in, 0);
        for (int j = 0; j < dim; j++) numeric[pad * dim + j] = 0;
        assertGradientMatches("weight (padding_idx 2)", t[0].grad(), numeric);

        // Without padding_idx, row 2 gets its gradient like any other.
        t[0].zeroGrad();
        unpadded.apply(t).backward();
        NumericsTest.assertAllClose("embedding grad without padding", accumulated, t[0].grad().toDoubleArray(), 1e-12);
        assertGradientMatches("weight (no padding)", t[0].grad(), finiteDifferences(unpadded, in, 0));
        assertNull(t[1].grad());
    }

    @Test
    void loraGradientsReachAAndBButNotTheFrozenWeight() {
        int batch = 2, seq = 3, inF = 6, outF = 4, r = 2;
        double alpha = 8, s = alpha / r;
        Input[] in = {
            Input.fixed("x", gaussian(batch * seq * inF), batch, seq, inF),
            Input.fixed("W", gaussian(outF * inF), outF, inF),
            Input.param("A", gaussian(r * inF), r, inF),
            Input.param("B", gaussian(outF * r), outF, r), // non-zero, so A's gradient is too
        };
        Loss loss = t -> lora(t[0], t[1], t[2], t[3], s).pow(2).sum();

        Tensor[] t = tensors(in);
        Tensor y = lora(t[0], t[1], t[2], t[3], s);
        assertArrayEquals(new long[] {batch, seq, outF}, y.shape());
        NumericsTest.assertAllClose("LoRA forward",
                loraRef(in[0].values(), in[1].values(), in[2].values(), in[3].values(), s, batch * seq, inF, outF, r),
                y.toDoubleArray(), 1e-12);

        y.pow(2).sum().backward();
        assertNull(t[0].grad(), "x does not require grad");
        assertNull(t[1].grad(), "W is frozen");
        assertGradientMatches("A", t[2].grad(), finiteDifferences(loss, in, 2));
        assertGradientMatches("B", t[3].grad(), finiteDifferences(loss, in, 3));
    }

    @Test
    void loraWithZeroBGivesAZeroGradientToA() {
        int inF = 5, outF = 3, r = 2;
        double s = 16.0 / r;
        Input[] in = {
            Input.fixed("x", gaussian(4 * inF), 4, inF),
            Input.fixed("W", gaussian(outF * inF), outF, inF),
            Input.param("A", gaussian(r * inF), r, inF),
            Input.param("B", new double[outF * r], outF, r), // PyTorch LoRA's initialisation
        };
        Loss loss = t -> lora(t[0], t[1], t[2], t[3], s).pow(2).sum();

        Tensor[] t = tensors(in);
        loss.apply(t).backward();
        assertArrayEquals(new double[r * inF], t[2].grad().toDoubleArray(), "dL/dA = s·Bᵀ·(...) = 0 when B = 0");
        assertGradientMatches("B", t[3].grad(), finiteDifferences(loss, in, 3));
        assertNull(t[1].grad());
    }

    // ------------------------------------------------------------------ the LoRA expression

    /** {@code x·Wᵀ + s·(x·Aᵀ)·Bᵀ}. */
    private static Tensor lora(Tensor x, Tensor w, Tensor a, Tensor b, double s) {
        return x.matmul(w.t()).add(x.matmul(a.t()).matmul(b.t()).mul(s));
    }

    /** {@link #lora} in plain Java, for {@code rows} input rows. */
    private static double[] loraRef(double[] x, double[] w, double[] a, double[] b, double s,
                                    int rows, int inF, int outF, int r) {
        double[] y = new double[rows * outF];
        for (int n = 0; n < rows; n++) {
            double[] down = new double[r];
            for (int j = 0; j < r; j++) {
                for (int i = 0; i < inF; i++) down[j] += a[j * inF + i] * x[n * inF + i];
            }
            for (int o = 0; o < outF; o++) {
                double acc = 0;
                for (int i = 0; i < inF; i++) acc += w[o * inF + i] * x[n * inF + i];
                for (int j = 0; j < r; j++) acc += s * b[o * r + j] * down[j];
                y[n * outF + o] = acc;
            }
        }
        return y;
    }

    // ------------------------------------------------------------------ finite differences

    /** A scalar loss of FLOAT64 tensors, one per {@link Input}. */
    @FunctionalInterface
    private interface Loss {
        Tensor apply(Tensor... inputs);
    }

    /** A FLOAT64 input of a loss: row-major values, shape, and whether it requires gradients. */
    private record Input(String name, double[] values, long[] shape, boolean requiresGrad) {
        static Input param(String name, double[] values, long... shape) {
            return new Input(name, values, shape, true);
        }

        static Input fixed(String name, double[] values, long... shape) {
            return new Input(name, values, shape, false);
        }
    }

    /** The inputs as tensors of the current scope, requiring gradients as each says. */
    private static Tensor[] tensors(Input... inputs) {
        Tensor[] t = new Tensor[inputs.length];
        for (int i = 0; i < inputs.length; i++) {
            t[i] = Tensor.of(inputs[i].values(), inputs[i].shape()).requiresGrad_(inputs[i].requiresGrad());
        }
        return t;
    }

    /** The loss's value on fresh tensors of the inputs, freed before returning. */
    private static double evaluate(Loss loss, Input... inputs) {
        try (TensorScope s = TensorScope.open()) {
            Tensor[] t = new Tensor[inputs.length];
            for (int i = 0; i < inputs.length; i++) t[i] = Tensor.of(inputs[i].values(), inputs[i].shape());
            Tensor value = loss.apply(t);
            assertEquals(DType.FLOAT64, value.dtype(), "finite differences need a FLOAT64 forward");
            return value.item();
        }
    }

    /** Central differences {@code (L(v + ε·e_i) - L(v - ε·e_i)) / 2ε} over each element of {@code inputs[k]}. */
    private static double[] finiteDifferences(Loss loss, Input[] inputs, int k) {
        double[] v = inputs[k].values().clone();
        Input[] perturbed = inputs.clone();
        perturbed[k] = new Input(inputs[k].name(), v, inputs[k].shape(), false);
        double[] g = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            double original = v[i];
            v[i] = original + EPS;
            double plus = evaluate(loss, perturbed);
            v[i] = original - EPS;
            double minus = evaluate(loss, perturbed);
            v[i] = original;
            g[i] = (plus - minus) / (2 * EPS);
        }
        return g;
    }

    /**
     * {@code grad} agrees with {@code numeric} within {@link #TOL} times the largest numeric
     * component (at least 1), and is not all zeros.
     */
    private static void assertGradientMatches(String name, Tensor grad, double[] numeric) {
        assertNotNull(grad, name + " has no gradient");
        assertEquals(DType.FLOAT64, grad.dtype(), name);
        double[] analytic = grad.toDoubleArray();
        assertEquals(numeric.length, analytic.length, name + ": element count");
        double scale = 0;
        for (double d : numeric) scale = Math.max(scale, Math.abs(d));
        assertTrue(scale > 1e-3, name + ": the checked gradient should not vanish");
        double bound = TOL * Math.max(1, scale);
        for (int i = 0; i < numeric.length; i++) {
            if (!(Math.abs(analytic[i] - numeric[i]) <= bound)) {
                fail("d loss / d " + name + "[" + i + "]: backward gives " + analytic[i]
                        + ", finite differences " + numeric[i] + " (tolerance " + bound + ")");
            }
        }
    }

    private double[] gaussian(int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = rnd.nextGaussian();
        return a;
    }
}
