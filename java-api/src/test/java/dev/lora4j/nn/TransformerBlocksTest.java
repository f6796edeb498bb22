package dev.lora4j.nn;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.ScopePerTest;
import dev.lora4j.Tensor;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * LayerNorm, GELU (erf and tanh) and scaled dot-product attention against plain-Java
 * references and closed forms, in float32 and float64; gradients against central finite
 * differences of the float64 forward; the multi-head module against per-head plain Java.
 */
@ExtendWith(ScopePerTest.class)
class TransformerBlocksTest {

    private final Random rnd = new Random(14);

    private double[] gaussian(int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = rnd.nextGaussian();
        return a;
    }

    private static Tensor tensor(double[] data, DType dtype, long... shape) {
        try (Tensor t = Tensor.of(data, shape)) {
            return t.to(dtype);
        }
    }

    private static double tol(DType dtype) {
        return dtype == DType.FLOAT64 ? 1e-12 : 2e-6;
    }

    // ------------------------------------------------------------------ LayerNorm

    static double[] layerNormRef(double[] x, int d, double[] w, double[] b, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < x.length / d; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < d; j++) mean += x[r * d + j];
            mean /= d;
            for (int j = 0; j < d; j++) var += (x[r * d + j] - mean) * (x[r * d + j] - mean);
            var /= d;
            for (int j = 0; j < d; j++) y[r * d + j] = (x[r * d + j] - mean) / Math.sqrt(var + eps) * w[j] + b[j];
        }
        return y;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT32", "FLOAT64"})
    void layerNormMatchesPlainJava(DType dtype) {
        int d = 6;
        double[] x = gaussian(2 * 3 * d), w = gaussian(d), b = gaussian(d);
        Tensor out = Functional.layerNorm(tensor(x, dtype, 2, 3, d), new long[] {d}, tensor(w, dtype, d), tensor(b, dtype, d), 1e-12);
        assertEquals(dtype, out.dtype());
        assertArrayEquals(layerNormRef(x, d, w, b, 1e-12), out.to(DType.FLOAT64).toDoubleArray(), 10 * tol(dtype));

        try (LayerNorm ln = new LayerNorm(d, 1e-5)) {
            ln.to(dtype);
            double[] ones = new double[d];
            java.util.Arrays.fill(ones, 1);
            assertArrayEquals(layerNormRef(x, d, ones, new double[d], 1e-5),
                    ln.forward(tensor(x, dtype, 2, 3, d)).to(DType.FLOAT64).toDoubleArray(), 10 * tol(dtype));
            assertEquals(java.util.List.of("weight", "bias"), java.util.List.copyOf(ln.stateDict().keySet()));
        }
    }

    @Test
    void layerNormGradientsMatchFiniteDifferences() {
        int d = 5;
        double[][] in = {gaussian(3 * d), gaussian(d), gaussian(d)};
        double[] r = gaussian(3 * d);
        checkGradients(in, new long[][] {{3, d}, {d}, {d}}, r,
                t -> Functional.layerNorm(t[0], new long[] {d}, t[1], t[2], 1e-5));
    }

    @Test
    void layerNormRefusesAShapeThatIsNotTheLastDimensions() {
        Tensor x = Tensor.zeros(2, 4);
        var e = assertThrows(IllegalArgumentException.class, () -> Functional.layerNorm(x, new long[] {3}, null, null, 1e-5));
        assertTrue(e.getMessage().contains("normalizedShape"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Functional.layerNorm(x, new long[] {4}, Tensor.ones(3), null, 1e-5));
    }

    // ------------------------------------------------------------------ GELU

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT32", "FLOAT64"})
    void geluExactAndTanhMatchClosedForms(DType dtype) {
        // x·Φ(x) with Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208, Φ(-0.5) = 0.3085375387259869.
        double[] x = {0, 1, 2, -0.5};
        double[] exact = {0, 0.8413447460685429, 2 * 0.9772498680518208, -0.5 * 0.3085375387259869};
        assertArrayEquals(exact, Activation.gelu().forward(tensor(x, dtype, 4)).to(DType.FLOAT64).toDoubleArray(), 10 * tol(dtype));
        double[] tanh = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            tanh[i] = 0.5 * x[i] * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
        }
        Activation approx = Activation.gelu("tanh");
        assertArrayEquals(tanh, approx.forward(tensor(x, dtype, 4)).to(DType.FLOAT64).toDoubleArray(), 10 * tol(dtype));
        assertNotEquals(exact[1], tanh[1], 1e-6, "the two forms differ, so each check is distinct");
        assertEquals("GELU(approximate='tanh')", approx.toString());
        assertThrows(IllegalArgumentException.class, () -> Activation.gelu("fast"));
    }

    @Test
    void geluGradientsMatchFiniteDifferences() {
        double[][] in = {gaussian(7)};
        double[] r = gaussian(7);
        checkGradients(in, new long[][] {{7}}, r, t -> t[0].gelu());
        checkGradients(in, new long[][] {{7}}, r, t -> t[0].gelu("tanh"));
    }

    // ------------------------------------------------------------------ attention

    /** softmax(q·kᵀ/√d + mask)·v per (batch·head) slice; mask (L, S) additive, shared, or null. */
    static double[] attentionRef(double[] q, double[] k, double[] v, double[] mask, int bh, int l, int s, int d, int dv) {
        double[] out = new double[bh * l * dv];
        for (int h = 0; h < bh; h++) {
            for (int i = 0; i < l; i++) {
                double[] sc = new double[s];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < s; j++) {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += q[(h * l + i) * d + c] * k[(h * s + j) * d + c];
                    sc[j] = dot / Math.sqrt(d) + (mask == null ? 0 : mask[i * s + j]);
                    max = Math.max(max, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j < s; j++) sum += sc[j] = Math.exp(sc[j] - max);
                for (int j = 0; j < s; j++) {
                    for (int c = 0; c < dv; c++) out[(h * l + i) * dv + c] += sc[j] / sum * v[(h * s + j) * dv + c];
                }
            }
        }
        return out;
    }

    /**
     * Both native paths: without gradients the shim's parallel per-slice loop, with a query
     * that requires grad the serial loop that autograd records (LibTorch 1.13).
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"FLOAT32, false", "FLOAT64, false", "FLOAT32, true", "FLOAT64, true"})
    void attentionMatchesPlainJavaWithAdditiveBooleanAndCausalMasks(DType dtype, boolean grad) {
        int b = 2, h = 3, l = 4, s = 5, d = 6, dv = 3;
        double[] q = gaussian(b * h * l * d), k = gaussian(b * h * s * d), v = gaussian(b * h * s * dv);
        Tensor tq = tensor(q, dtype, b, h, l, d).requiresGrad_(grad), tk = tensor(k, dtype, b, h, s, d), tv = tensor(v, dtype, b, h, s, dv);
        double t = 10 * tol(dtype);

        assertArrayEquals(attentionRef(q, k, v, null, b * h, l, s, d, dv),
                Functional.scaledDotProductAttention(tq, tk, tv, null, 0, false).detach().to(DType.FLOAT64).toDoubleArray(), t);

        double[] add = gaussian(l * s);
        assertArrayEquals(attentionRef(q, k, v, add, b * h, l, s, d, dv),
                Functional.scaledDotProductAttention(tq, tk, tv, tensor(add, dtype, l, s), 0, false).detach().to(DType.FLOAT64).toDoubleArray(), t);

        // Boolean: keys 3 and 4 hidden from every query == an additive -1e30 there.
        boolean[] keep = new boolean[s];
        double[] hidden = new double[l * s];
        for (int j = 0; j < s; j++) {
            keep[j] = j < 3;
            for (int i = 0; i < l; i++) hidden[i * s + j] = j < 3 ? 0 : -1e30;
        }
        double[] want = attentionRef(q, k, v, hidden, b * h, l, s, d, dv);
        assertArrayEquals(want, Functional.scaledDotProductAttention(tq, tk, tv, Tensor.of(keep, 1, 1, 1, s), 0, false)
                .detach().to(DType.FLOAT64).toDoubleArray(), t);

        // Causal with L = S: query i sees keys 0..i.
        Tensor kk = tensor(k, dtype, b, h, s, d).narrow(2, 0, l), vv = tensor(v, dtype, b, h, s, dv).narrow(2, 0, l);
        double[] causal = new double[l * l];
        for (int i = 0; i < l; i++) for (int j = i + 1; j < l; j++) causal[i * l + j] = -1e30;
        assertArrayEquals(attentionRef(q, kk.contiguous().to(DType.FLOAT64).toDoubleArray(), vv.contiguous().to(DType.FLOAT64).toDoubleArray(),
                        causal, b * h, l, l, d, dv),
                Functional.scaledDotProductAttention(tq, kk, vv, null, 0, true).detach().to(DType.FLOAT64).toDoubleArray(), t);
    }

    @Test
    void attentionGradientsMatchFiniteDifferences() {
        int bh = 2, l = 3, s = 4, d = 2;
        double[][] in = {gaussian(bh * l * d), gaussian(bh * s * d), gaussian(bh * s * d), gaussian(l * s)};
        double[] r = gaussian(bh * l * d);
        checkGradients(in, new long[][] {{bh, l, d}, {bh, s, d}, {bh, s, d}, {l, s}}, r,
                t -> Functional.scaledDotProductAttention(t[0], t[1], t[2], t[3], 0, false));
    }

    /**
     * The LibTorch 1.13 path with gradients (one autograd node for every slice, its own backward):
     * query, key and value require grad, the mask is a constant broadcast over heads and queries
     * (BERT's padding mask, (batch, 1, 1, seq)) with one key hidden per batch row.
     */
    @Test
    void attentionGradientsWithAConstantBroadcastMaskMatchFiniteDifferences() {
        int b = 2, h = 3, l = 3, s = 4, d = 2, dv = 3;
        double[] m = new double[b * s];
        m[3] = -1e30;
        m[s + 1] = -1e30;
        Tensor mask = Tensor.of(m, b, 1, 1, s);
        double[][] in = {gaussian(b * h * l * d), gaussian(b * h * s * d), gaussian(b * h * s * dv)};
        double[] r = gaussian(b * h * l * dv);
        checkGradients(in, new long[][] {{b, h, l, d}, {b, h, s, d}, {b, h, s, dv}}, r,
                t -> Functional.scaledDotProductAttention(t[0], t[1], t[2], mask, 0, false));
    }

    /**
     * Many slices (batch 3 × 7 heads = 21): the LibTorch 1.13 loop works in chunks of slices (one
     * softmax per chunk), so chunks of several slices and a shorter last chunk are covered, with a
     * per-batch-row padding mask whose rows cross chunk boundaries; forward against plain Java on
     * both paths, gradients against finite differences.
     */
    @Test
    void attentionOverManySlicesWithAPerRowMaskMatchesPlainJavaAndFiniteDifferences() {
        int b = 3, h = 7, l = 2, s = 3, d = 2, dv = 2;
        double[] m = new double[b * s];
        m[2] = -1e30;       // row 0 hides key 2
        m[s] = -1e30;       // row 1 hides key 0
        Tensor mask = Tensor.of(m, b, 1, 1, s);
        double[] q = gaussian(b * h * l * d), k = gaussian(b * h * s * d), v = gaussian(b * h * s * dv);
        double[] want = new double[b * h * l * dv];
        for (int bi = 0; bi < b; bi++) {
            double[] rowMask = new double[l * s];
            for (int i = 0; i < l; i++) System.arraycopy(m, bi * s, rowMask, i * s, s);
            int qn = h * l * d, kn = h * s * d, vn = h * s * dv, on = h * l * dv;
            double[] o = attentionRef(java.util.Arrays.copyOfRange(q, bi * qn, (bi + 1) * qn), java.util.Arrays.copyOfRange(k, bi * kn, (bi + 1) * kn),
                    java.util.Arrays.copyOfRange(v, bi * vn, (bi + 1) * vn), rowMask, h, l, s, d, dv);
            System.arraycopy(o, 0, want, bi * on, on);
        }
        for (boolean grad : new boolean[] {false, true}) {
            Tensor tq = Tensor.of(q, b, h, l, d).requiresGrad_(grad), tk = Tensor.of(k, b, h, s, d), tv = Tensor.of(v, b, h, s, dv);
            assertArrayEquals(want, Functional.scaledDotProductAttention(tq, tk, tv, mask, 0, false).detach().toDoubleArray(), 1e-12);
        }
        checkGradients(new double[][] {q, k, v}, new long[][] {{b, h, l, d}, {b, h, s, d}, {b, h, s, dv}}, gaussian(b * h * l * dv),
                t -> Functional.scaledDotProductAttention(t[0], t[1], t[2], mask, 0, false));
    }

    @Test
    void attentionDropoutZeroesWeightsOnlyWhenAsked() {
        Tensor q = Tensor.randn(1, 1, 64, 8), k = Tensor.randn(1, 1, 64, 8), v = Tensor.ones(1, 1, 64, 8);
        // With v all ones every output is the sum of the (dropped, rescaled) weights of its row: 1 without dropout.
        double[] plain = Functional.scaledDotProductAttention(q, k, v, null, 0, false).toDoubleArray();
        for (double x : plain) assertEquals(1.0, x, 1e-5);
        double[] dropped = Functional.scaledDotProductAttention(q, k, v, null, 0.5, false).toDoubleArray();
        long changed = java.util.Arrays.stream(dropped).filter(x -> Math.abs(x - 1) > 1e-3).count();
        assertTrue(changed > dropped.length / 2, "dropout 0.5 changed only " + changed + " of " + dropped.length);
    }

    @Test
    void attentionRefusesMismatchedShapesAndMasks() {
        Tensor q = Tensor.zeros(1, 2, 3, 4), k = Tensor.zeros(1, 2, 5, 4), v = Tensor.zeros(1, 2, 5, 4);
        assertThrows(IllegalArgumentException.class, () -> Functional.scaledDotProductAttention(q, Tensor.zeros(1, 2, 5, 3), v, null, 0, false));
        var e = assertThrows(IllegalArgumentException.class,
                () -> Functional.scaledDotProductAttention(q, k, v, Tensor.zeros(1, 1, 3, 4), 0, false));
        assertTrue(e.getMessage().contains("attnMask"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Functional.scaledDotProductAttention(q, k, v, Tensor.zeros(DType.INT64, 5), 0, false));
        assertThrows(IllegalArgumentException.class, () -> Functional.scaledDotProductAttention(q, k, v, null, 1.0, false));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT32", "FLOAT64"})
    void multiHeadSelfAttentionMatchesPerHeadPlainJava(DType dtype) {
        int b = 2, s = 3, hidden = 8, heads = 2, dh = hidden / heads;
        try (var mha = new MultiHeadSelfAttention(hidden, heads, 0.1)) {
            mha.to(dtype).eval();
            assertEquals(java.util.List.of("query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias"),
                    java.util.List.copyOf(mha.stateDict().keySet()));
            double[] x = gaussian(b * s * hidden);
            Tensor tx = tensor(x, dtype, b, s, hidden);
            // Key 2 of batch row 1 is padding.
            double[] mask = new double[b * s];
            mask[s + 2] = -1e30;
            Tensor out = mha.forward(tx, tensor(mask, dtype, b, 1, 1, s));
            double[][] proj = new double[3][];
            String[] names = {"query", "key", "value"};
            for (int p = 0; p < 3; p++) {
                proj[p] = ((Linear) mha.child(names[p])).forward(tx).to(DType.FLOAT64).toDoubleArray();
            }
            double[] want = new double[b * s * hidden];
            for (int bi = 0; bi < b; bi++) {
                for (int h = 0; h < heads; h++) {
                    double[][] qkv = new double[3][s * dh];
                    for (int p = 0; p < 3; p++) {
                        for (int i = 0; i < s; i++) System.arraycopy(proj[p], (bi * s + i) * hidden + h * dh, qkv[p], i * dh, dh);
                    }
                    double[] m = new double[s * s];
                    for (int i = 0; i < s; i++) for (int j = 0; j < s; j++) m[i * s + j] = mask[bi * s + j];
                    double[] o = attentionRef(qkv[0], qkv[1], qkv[2], m, 1, s, s, dh, dh);
                    for (int i = 0; i < s; i++) System.arraycopy(o, i * dh, want, (bi * s + i) * hidden + h * dh, dh);
                }
            }
            assertArrayEquals(want, out.to(DType.FLOAT64).toDoubleArray(), 10 * tol(dtype));
        }
    }

    // ------------------------------------------------------------------ finite differences

    /** Checks d/dx_k sum(f(x)·r) from backward against central differences, in float64, for every input. */
    private static void checkGradients(double[][] in, long[][] shapes, double[] r, Function<Tensor[], Tensor> f) {
        Tensor rt = Tensor.of(r, f.apply(tensors(in, shapes, false)).shape());
        Tensor[] t = tensors(in, shapes, true);
        f.apply(t).mul(rt).sum().backward();
        double h = 1e-6;
        for (int k = 0; k < in.length; k++) {
            double[] got = t[k].grad().toDoubleArray();
            double max = 0;
            for (int i = 0; i < in[k].length; i++) {
                double[][] plus = copy(in), minus = copy(in);
                plus[k][i] += h;
                minus[k][i] -= h;
                double fd = (f.apply(tensors(plus, shapes, false)).mul(rt).sum().item()
                        - f.apply(tensors(minus, shapes, false)).mul(rt).sum().item()) / (2 * h);
                assertEquals(fd, got[i], 1e-6 * Math.max(1, Math.abs(fd)), "input " + k + " element " + i);
                max = Math.max(max, Math.abs(got[i]));
            }
            assertTrue(max > 1e-6, "gradient of input " + k + " is all zero");
        }
    }

    private static double[][] copy(double[][] a) {
        double[][] c = new double[a.length][];
        for (int i = 0; i < a.length; i++) c[i] = a[i].clone();
        return c;
    }

    private static Tensor[] tensors(double[][] in, long[][] shapes, boolean grad) {
        Tensor[] t = new Tensor[in.length];
        for (int i = 0; i < in.length; i++) t[i] = Tensor.of(in[i], shapes[i]).requiresGrad_(grad);
        return t;
    }
}
