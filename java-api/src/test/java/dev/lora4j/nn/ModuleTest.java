package dev.lora4j.nn;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * nn modules against independent truth: PyTorch's initialisation distributions, parameter
 * names and counts, forwards recomputed in plain Java, state dicts, dtype conversion, lifetime.
 */
class ModuleTest {

    // ------------------------------------------------------------------ helpers

    private static double mean(float[] a) {
        double s = 0;
        for (float v : a) s += v;
        return s / a.length;
    }

    private static double std(float[] a) {
        double m = mean(a), s = 0;
        for (float v : a) s += (v - m) * (v - m);
        return Math.sqrt(s / (a.length - 1));
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    private static boolean allEqual(float[] a) {
        for (float v : a) if (v != a[0]) return false;
        return true;
    }

    /** y[n][o] = sum_i x[n][i] * w[o][i] + b[o], all row-major, in double. */
    private static double[] linearRef(float[] x, float[] w, float[] b, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int r = 0; r < n; r++) {
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) s += (double) x[r * in + i] * w[o * in + i];
                y[r * out + o] = s;
            }
        }
        return y;
    }

    private static double[] linearRef(double[] x, double[] w, double[] b, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int r = 0; r < n; r++) {
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) s += x[r * in + i] * w[o * in + i];
                y[r * out + o] = s;
            }
        }
        return y;
    }

    private static void assertClose(double[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length, "length");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], tol * Math.max(1, Math.abs(expected[i])), "element " + i);
        }
    }

    private static Sequential smallMlp() {
        return new Sequential(new Linear(4, 8), Activation.relu(), new Linear(8, 3));
    }

    // ------------------------------------------------------------------ initialisation

    @Test
    void linearInitIsPyTorchsKaimingUniform() {
        Torch.manualSeed(0);
        try (TensorScope s = TensorScope.open(); Linear small = new Linear(3, 2); Linear big = new Linear(1000, 1000)) {
            double smallBound = 1 / Math.sqrt(3);
            float[] w = small.weight().toFloatArray();
            float[] b = small.bias().toFloatArray();
            assertArrayEquals(new long[] {2, 3}, small.weight().shape());
            assertArrayEquals(new long[] {2}, small.bias().shape());
            assertTrue(maxAbs(w) <= smallBound, "weight within ±1/sqrt(in): " + maxAbs(w));
            assertTrue(maxAbs(b) <= smallBound, "bias within ±1/sqrt(in): " + maxAbs(b));
            assertFalse(allEqual(w), "weight is random, not constant");
            assertFalse(allEqual(b), "bias is random, not constant");
            assertTrue(small.weight().requiresGrad() && small.bias().requiresGrad());
            assertEquals(DType.FLOAT32, small.weight().dtype());

            double bound = 1 / Math.sqrt(1000);
            float[] bw = big.weight().toFloatArray();
            float[] bb = big.bias().toFloatArray();
            assertEquals(1_000_000, bw.length);
            assertTrue(maxAbs(bw) <= bound, "big weight within ±1/sqrt(1000): " + maxAbs(bw));
            assertTrue(maxAbs(bw) > 0.99 * bound, "U(-b, b) reaches near its bound: " + maxAbs(bw));
            assertTrue(maxAbs(bb) <= bound, "big bias within ±1/sqrt(1000): " + maxAbs(bb));
            assertTrue(maxAbs(bb) > 0.9 * bound, "bias spans its range: " + maxAbs(bb));
            double expectedStd = 1 / Math.sqrt(3 * 1000.0);
            assertEquals(expectedStd, std(bw), 0.02 * expectedStd, "std of U(±1/sqrt(in)) is 1/sqrt(3 in)");
            assertEquals(0, mean(bw), 0.1 * expectedStd, "weight mean ≈ 0");
            assertEquals(bound / Math.sqrt(3), std(bb), 0.1 * bound / Math.sqrt(3), "bias std ≈ bound/sqrt(3)");
        }
    }

    @Test
    void initIsReproducibleWithManualSeed() {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(42);
            float[] first;
            try (Linear a = new Linear(5, 4)) {
                first = a.weight().toFloatArray();
            }
            Torch.manualSeed(42);
            try (Linear b = new Linear(5, 4); Linear c = new Linear(5, 4)) {
                assertArrayEquals(first, b.weight().toFloatArray(), "same seed, same weights");
                assertFalse(java.util.Arrays.equals(first, c.weight().toFloatArray()), "the generator advances");
            }
        }
    }

    @Test
    void conv2dInitUsesFanInOfInOverGroupsTimesKernel() {
        Torch.manualSeed(1);
        // fan_in = 8/2 * 3*3 = 36; a wrong fan_in (8*9 = 72 or 9) would give a clearly different bound.
        try (TensorScope s = TensorScope.open(); Conv2d conv = new Conv2d(8, 64, 3, 1, 0, 1, 2, true)) {
            assertArrayEquals(new long[] {64, 4, 3, 3}, conv.weight().shape());
            double bound = 1 / Math.sqrt(36);
            float[] w = conv.weight().toFloatArray();
            float[] b = conv.bias().toFloatArray();
            assertTrue(maxAbs(w) <= bound, "weight within ±1/sqrt(36): " + maxAbs(w));
            assertTrue(maxAbs(w) > 0.98 * bound, "weight reaches near ±1/sqrt(36): " + maxAbs(w));
            assertEquals(bound / Math.sqrt(3), std(w), 0.06 * bound / Math.sqrt(3), "weight std");
            assertTrue(maxAbs(b) <= bound, "bias within ±1/sqrt(fan_in): " + maxAbs(b));
            assertTrue(maxAbs(b) > 0.8 * bound, "bias spans its range: " + maxAbs(b));
            assertFalse(allEqual(b));
            assertEquals("Conv2d(8, 64, kernel_size=(3, 3), stride=(1, 1), groups=2)", conv.toString());
        }
    }

    @Test
    void embeddingInitIsStandardNormalWithZeroPaddingRowAndNoPaddingGradient() {
        Torch.manualSeed(2);
        try (TensorScope s = TensorScope.open(); Embedding big = new Embedding(1000, 256)) {
            float[] w = big.weight().toFloatArray();
            assertEquals(0, mean(w), 0.01, "N(0, 1) mean");
            assertEquals(1, std(w), 0.01, "N(0, 1) std");
            assertEquals(-1, big.paddingIdx());
            assertEquals("Embedding(1000, 256)", big.toString());
        }
        try (TensorScope s = TensorScope.open(); Embedding emb = new Embedding(10, 4, 2)) {
            assertEquals(2, emb.paddingIdx());
            assertEquals("Embedding(10, 4, padding_idx=2)", emb.toString());
            float[] w = emb.weight().toFloatArray();
            for (int j = 0; j < 4; j++) assertEquals(0f, w[2 * 4 + j], "padding row is exactly zero");
            for (int r = 0; r < 10; r++) {
                if (r == 2) continue;
                boolean nonzero = false;
                for (int j = 0; j < 4; j++) nonzero |= w[r * 4 + j] != 0;
                assertTrue(nonzero, "row " + r + " is random");
            }

            Tensor idx = Tensor.of(new long[] {2, 3, 2, 5}, 4);
            Tensor out = emb.forward(idx);
            assertArrayEquals(new long[] {4, 4}, out.shape());
            float[] o = out.toFloatArray();
            for (int k = 0; k < 4; k++) {
                int row = new int[] {2, 3, 2, 5}[k];
                for (int j = 0; j < 4; j++) assertEquals(w[row * 4 + j], o[k * 4 + j], "lookup of row " + row);
            }
            float[] coef = new float[16];
            for (int i = 0; i < 16; i++) coef[i] = i + 1;
            out.mul(Tensor.of(coef, 4, 4)).sum().backward();
            float[] g = emb.weight().grad().toFloatArray();
            float[] expected = new float[40];
            for (int j = 0; j < 4; j++) {
                expected[3 * 4 + j] = coef[1 * 4 + j];
                expected[5 * 4 + j] = coef[3 * 4 + j];
                // row 2 was looked up twice but is the padding row: no gradient
            }
            assertArrayEquals(expected, g, "gradient: coefficients on rows 3 and 5, zero on padding row 2");
        }
        try (Embedding neg = new Embedding(10, 4, -2)) {
            assertEquals(8, neg.paddingIdx(), "negative padding index counts from the end");
            float[] w = neg.weight().toFloatArray();
            for (int j = 0; j < 4; j++) assertEquals(0f, w[8 * 4 + j]);
        }
    }

    // ------------------------------------------------------------------ names, counts, printing

    @Test
    void seed000MlpNamesCountsFreezeAndPrinting() {
        try (Sequential mlp = new Sequential(new Linear(784, 1000), Activation.relu(), new Linear(1000, 2000),
                Activation.relu(), new Linear(2000, 10))) {
            assertEquals(List.of("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"),
                    new ArrayList<>(mlp.namedParameters().keySet()));
            assertEquals(2_807_010L, mlp.parameterCount());
            assertEquals(2_807_010L, mlp.trainableParameterCount());
            assertEquals(6, mlp.trainableParameters().size());
            assertArrayEquals(new long[] {2000, 1000}, mlp.namedParameters().get("2.weight").shape());
            assertSame(((Linear) mlp.get(4)).bias(), mlp.namedParameters().get("4.bias"));
            assertEquals(List.of("", "0", "1", "2", "3", "4"), new ArrayList<>(mlp.namedModules().keySet()));
            assertEquals(5, mlp.size());

            mlp.freeze();
            assertEquals(0L, mlp.trainableParameterCount());
            assertTrue(mlp.trainableParameters().isEmpty());
            assertEquals(2_807_010L, mlp.parameterCount(), "freezing keeps the parameters");
            ((Linear) mlp.get(4)).bias().requiresGrad_(true);
            assertEquals(10L, mlp.trainableParameterCount());
            mlp.requiresGrad_(true);
            assertEquals(2_807_010L, mlp.trainableParameterCount());

            String expected = """
                    Sequential(
                      (0): Linear(in_features=784, out_features=1000, bias=True)
                      (1): ReLU()
                      (2): Linear(in_features=1000, out_features=2000, bias=True)
                      (3): ReLU()
                      (4): Linear(in_features=2000, out_features=10, bias=True)
                    )""";
            assertEquals(expected, mlp.toString());
        }
        try (Linear noBias = new Linear(3, 2, false); Flatten f = new Flatten()) {
            assertEquals("Linear(in_features=3, out_features=2, bias=False)", noBias.toString());
            assertEquals(List.of("weight"), new ArrayList<>(noBias.namedParameters().keySet()));
            assertEquals(6L, noBias.parameterCount());
            assertEquals("Flatten(start_dim=1, end_dim=-1)", f.toString());
        }
    }

    // ------------------------------------------------------------------ forwards

    @Test
    void linearForwardIsXWtPlusB() {
        Torch.manualSeed(3);
        try (TensorScope s = TensorScope.open(); Linear lin = new Linear(3, 2); Linear noBias = new Linear(3, 2, false)) {
            // Set known weights too, so the check does not rest on the initialiser.
            try (var ng = Torch.noGrad()) {
                lin.weight().copy_(Tensor.of(new float[] {0.5f, -1f, 2f, 1.5f, 0.25f, -0.75f}, 2, 3));
                lin.bias().copy_(Tensor.of(new float[] {0.1f, -0.2f}, 2));
            }
            float[] x = {1, 2, 3, -1, 0.5f, 4};
            Tensor y = lin.forward(Tensor.of(x, 2, 3));
            assertArrayEquals(new long[] {2, 2}, y.shape());
            // by hand: [0.5-2+6+0.1, 1.5+0.5-2.25-0.2], [-0.5-0.5+8+0.1, -1.5+0.125-3-0.2]
            assertClose(new double[] {4.6, -0.45, 7.1, -4.575}, y.toFloatArray(), 1e-6);

            // Random weights read back, random input with an extra batch dimension (2, 2, 3).
            float[] xr = Tensor.randn(2, 2, 3).toFloatArray();
            Tensor yr = noBias.forward(Tensor.of(xr, 2, 2, 3));
            assertArrayEquals(new long[] {2, 2, 2}, yr.shape());
            assertNull(noBias.bias());
            assertClose(linearRef(xr, noBias.weight().toFloatArray(), null, 4, 3, 2), yr.toFloatArray(), 1e-5);

            assertThrows(IllegalArgumentException.class, () -> lin.forward(Tensor.zeros(2, 4)), "wrong in_features");
        }
    }

    @Test
    void sequentialForwardEqualsChainingByHand() {
        Torch.manualSeed(4);
        try (TensorScope s = TensorScope.open(); Sequential seq = smallMlp(); Sequential empty = new Sequential()) {
            Tensor x = Tensor.randn(5, 4);
            Tensor out = seq.forward(x);
            Tensor byHand = seq.get(2).forward(seq.get(1).forward(seq.get(0).forward(x)));
            assertArrayEquals(new long[] {5, 3}, out.shape());
            assertTrue(out.equal(byHand), "Sequential forward = child forwards chained");
            assertFalse(x.isClosed(), "Sequential does not close its input");

            // And in plain Java.
            Linear l0 = (Linear) seq.get(0), l2 = (Linear) seq.get(2);
            double[] h = linearRef(x.toFloatArray(), l0.weight().toFloatArray(), l0.bias().toFloatArray(), 5, 4, 8);
            float[] hf = new float[h.length];
            for (int i = 0; i < h.length; i++) hf[i] = (float) Math.max(0, h[i]);
            double[] y = linearRef(hf, l2.weight().toFloatArray(), l2.bias().toFloatArray(), 5, 8, 3);
            assertClose(y, out.toFloatArray(), 1e-5);

            Tensor same = empty.forward(x);
            assertTrue(same.equal(x), "an empty Sequential is the identity");
        }
    }

    @Test
    void flattenShapes() {
        try (TensorScope s = TensorScope.open(); Flatten f = new Flatten(); Flatten f01 = new Flatten(0, 1);
             Flatten bad = new Flatten(2, 1)) {
            Tensor x = Tensor.arange(0, 120, 1, DType.FLOAT32).reshape(2, 3, 4, 5);
            Tensor y = f.forward(x);
            assertArrayEquals(new long[] {2, 60}, y.shape());
            assertArrayEquals(x.toFloatArray(), y.toFloatArray(), "row-major order is kept");
            assertArrayEquals(new long[] {6, 4, 5}, f01.forward(x).shape());
            assertArrayEquals(new long[] {2, 3, 20}, new Flatten(2, -1).forward(x).shape());
            assertThrows(IllegalArgumentException.class, () -> bad.forward(x));
        }
    }

    @Test
    void dropoutTrainAndEval() {
        Torch.manualSeed(5);
        double p = 0.3;
        try (TensorScope s = TensorScope.open(); Dropout d = new Dropout(p); Sequential seq = new Sequential(d)) {
            assertTrue(d.isTraining(), "modules start in training mode");
            int n = 200_000;
            Tensor x = Tensor.full(2.0, n);
            float[] y = d.forward(x).toFloatArray();
            int zeros = 0;
            float survivor = (float) (2.0 / (1 - p));
            for (float v : y) {
                if (v == 0) zeros++;
                else assertEquals(survivor, v, 1e-5, "survivors are scaled by 1/(1-p)");
            }
            assertEquals(p, zeros / (double) n, 0.01, "about p of the elements are zeroed");

            seq.eval();
            assertFalse(d.isTraining(), "eval() reaches children");
            Tensor r = Tensor.randn(1000);
            assertTrue(d.forward(r).equal(r), "eval mode is the identity");
            seq.train();
            assertTrue(d.isTraining());

            try (Dropout all = new Dropout(1.0); Dropout none = new Dropout(0.0)) {
                for (float v : all.forward(r).toFloatArray()) assertEquals(0.0, Math.abs(v), "p = 1 zeroes everything");
                assertTrue(none.forward(r).equal(r), "p = 0 keeps everything");
            }
        }
    }

    // ------------------------------------------------------------------ state dict

    @Test
    void stateDictCopiesIntoATwin() {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(10);
            Sequential a = smallMlp();
            Torch.manualSeed(11);
            Sequential b = smallMlp();
            try (a; b) {
                Tensor x = Tensor.randn(6, 4);
                assertFalse(a.forward(x).equal(b.forward(x)), "differently seeded twins differ");

                Map<String, Tensor> sd = a.stateDict();
                assertEquals(List.of("0.weight", "0.bias", "2.weight", "2.bias"), new ArrayList<>(sd.keySet()));
                for (Tensor t : sd.values()) assertFalse(t.requiresGrad(), "state dict tensors are detached");

                Module.LoadResult r = b.loadStateDict(sd, true);
                assertEquals(List.of(), r.missingKeys());
                assertEquals(List.of(), r.unexpectedKeys());
                assertTrue(a.forward(x).equal(b.forward(x)), "after loading, outputs are bit-for-bit equal");
                for (var e : b.namedParameters().entrySet()) {
                    assertTrue(e.getValue().requiresGrad(), e.getKey() + " still requires grad");
                    assertTrue(e.getValue().isLeaf(), e.getKey() + " still a leaf");
                }

                // The load copied: changing a afterwards does not change b.
                float[] before = ((Linear) b.get(0)).weight().toFloatArray();
                try (var ng = Torch.noGrad()) {
                    ((Linear) a.get(0)).weight().add_(1.0);
                }
                assertArrayEquals(before, ((Linear) b.get(0)).weight().toFloatArray(), "b is not an alias of a");
                // The state dict shares a's storage.
                assertArrayEquals(((Linear) a.get(0)).weight().toFloatArray(), sd.get("0.weight").toFloatArray(),
                        "stateDict tensors share the module's storage");

                // Dtypes are converted on load.
                Map<String, Tensor> doubles = new LinkedHashMap<>();
                sd.forEach((k, v) -> doubles.put(k, v.to(DType.FLOAT64)));
                b.loadStateDict(doubles, true);
                assertEquals(DType.FLOAT32, ((Linear) b.get(0)).weight().dtype());
                assertTrue(a.forward(x).equal(b.forward(x)));
            }
        }
    }

    @Test
    void strictLoadRejectsMissingUnexpectedAndMisshapenKeys() {
        try (TensorScope s = TensorScope.open()) {
            Torch.manualSeed(12);
            Sequential a = smallMlp();
            Torch.manualSeed(13);
            Sequential b = smallMlp();
            try (a; b) {
                float[] bWeight = ((Linear) b.get(0)).weight().toFloatArray();
                float[] bBias2 = ((Linear) b.get(2)).bias().toFloatArray();

                Map<String, Tensor> missing = new LinkedHashMap<>(a.stateDict());
                missing.remove("2.bias");
                var e1 = assertThrows(IllegalArgumentException.class, () -> b.loadStateDict(missing, true));
                assertTrue(e1.getMessage().contains("2.bias"), e1.getMessage());

                Map<String, Tensor> extra = new LinkedHashMap<>(a.stateDict());
                extra.put("5.weight", Tensor.zeros(2, 2));
                var e2 = assertThrows(IllegalArgumentException.class, () -> b.loadStateDict(extra, true));
                assertTrue(e2.getMessage().contains("5.weight"), e2.getMessage());

                Map<String, Tensor> misshapen = new LinkedHashMap<>(a.stateDict());
                misshapen.put("2.weight", Tensor.zeros(3, 9));
                var e3 = assertThrows(IllegalArgumentException.class, () -> b.loadStateDict(misshapen, true));
                assertTrue(e3.getMessage().contains("2.weight"), e3.getMessage());
                var e4 = assertThrows(IllegalArgumentException.class, () -> b.loadStateDict(misshapen, false));
                assertTrue(e4.getMessage().contains("2.weight"), e4.getMessage());

                assertArrayEquals(bWeight, ((Linear) b.get(0)).weight().toFloatArray(), "failed loads copy nothing");
                assertArrayEquals(bBias2, ((Linear) b.get(2)).bias().toFloatArray(), "failed loads copy nothing");

                Map<String, Tensor> both = new LinkedHashMap<>(a.stateDict());
                both.remove("2.bias");
                both.put("foo", Tensor.zeros(1));
                Module.LoadResult r = b.loadStateDict(both, false);
                assertEquals(List.of("2.bias"), r.missingKeys());
                assertEquals(List.of("foo"), r.unexpectedKeys());
                assertArrayEquals(((Linear) a.get(0)).weight().toFloatArray(), ((Linear) b.get(0)).weight().toFloatArray(),
                        "non-strict load copies the keys present");
                assertArrayEquals(((Linear) a.get(2)).weight().toFloatArray(), ((Linear) b.get(2)).weight().toFloatArray());
                assertArrayEquals(bBias2, ((Linear) b.get(2)).bias().toFloatArray(), "a missing key leaves the parameter alone");
            }
        }
    }

    // ------------------------------------------------------------------ dtype conversion

    @Test
    void toFloat64ConvertsEveryParameterAndKeepsFlags() {
        Torch.manualSeed(14);
        try (TensorScope s = TensorScope.open();
             Sequential seq = new Sequential(new Linear(3, 4), Activation.tanh(), new Linear(4, 2))) {
            ((Linear) seq.get(2)).bias().requiresGrad_(false);
            Map<String, double[]> values = new LinkedHashMap<>();
            Map<String, Boolean> flags = new LinkedHashMap<>();
            seq.namedParameters().forEach((k, v) -> {
                values.put(k, v.toDoubleArray());
                flags.put(k, v.requiresGrad());
            });
            assertSame(seq, seq.to(DType.FLOAT64));
            Map<String, Tensor> params = seq.namedParameters();
            assertEquals(values.keySet(), params.keySet());
            for (var e : params.entrySet()) {
                assertEquals(DType.FLOAT64, e.getValue().dtype(), e.getKey());
                assertEquals(flags.get(e.getKey()), e.getValue().requiresGrad(), e.getKey() + " keeps its flag");
                assertTrue(e.getValue().isLeaf(), e.getKey() + " is still a leaf");
                assertArrayEquals(values.get(e.getKey()), e.getValue().toDoubleArray(), e.getKey() + " keeps its values");
            }
            assertFalse(params.get("2.bias").requiresGrad());

            double[] x = {0.3, -1.2, 2.0, 1.0, 0.5, -0.25};
            Tensor out = seq.forward(Tensor.of(x, 2, 3));
            assertEquals(DType.FLOAT64, out.dtype());
            double[] h = linearRef(x, values.get("0.weight"), values.get("0.bias"), 2, 3, 4);
            for (int i = 0; i < h.length; i++) h[i] = Math.tanh(h[i]);
            double[] y = linearRef(h, values.get("2.weight"), values.get("2.bias"), 2, 4, 2);
            assertArrayEquals(y, out.toDoubleArray(), 1e-12, "float64 forward matches double arithmetic");

            out.sum().backward();
            assertEquals(DType.FLOAT64, params.get("0.weight").grad().dtype());
            assertNull(params.get("2.bias").grad(), "a frozen parameter gets no gradient");
            // d sum(y) / d b2 would be all ones; d/d W2[o][j] = sum_n h[n][j]
            double[] gw2 = params.get("2.weight").grad().toDoubleArray();
            for (int o = 0; o < 2; o++) {
                for (int j = 0; j < 4; j++) assertEquals(h[j] + h[4 + j], gw2[o * 4 + j], 1e-12);
            }

            assertThrows(IllegalArgumentException.class, () -> seq.to(DType.INT64));
        }
    }

    // ------------------------------------------------------------------ lifetime and argument checks

    @Test
    void closeFreesParametersAndClosedModulesRefuseWork() {
        try (TensorScope s = TensorScope.open()) {
            Linear lin = new Linear(3, 2);
            Tensor w = lin.weight();
            Tensor b = lin.bias();
            Map<String, Tensor> sd = lin.stateDict();
            float[] wValues = w.toFloatArray();
            lin.close();
            assertTrue(lin.isClosed());
            assertTrue(w.isClosed(), "closing the module closes its weight");
            assertTrue(b.isClosed(), "closing the module closes its bias");
            assertThrows(IllegalStateException.class, () -> lin.forward(Tensor.zeros(1, 3)));
            assertThrows(IllegalStateException.class, lin::namedParameters);
            assertThrows(IllegalStateException.class, lin::parameters);
            assertThrows(IllegalStateException.class, lin::bias);
            assertThrows(IllegalStateException.class, lin::stateDict);
            lin.close(); // idempotent
            assertArrayEquals(wValues, sd.get("weight").toFloatArray(), "state dict handles outlive the module");

            Sequential seq = smallMlp();
            Linear first = (Linear) seq.get(0);
            Tensor fw = first.weight();
            seq.close();
            assertTrue(first.isClosed(), "closing a Sequential closes its children");
            assertTrue(fw.isClosed());
            assertThrows(IllegalStateException.class, () -> seq.forward(Tensor.zeros(1, 4)));
        }
    }

    @Test
    void badConstructorArgumentsThrowClearly() {
        var e1 = assertThrows(IllegalArgumentException.class, () -> new Linear(0, 3));
        assertTrue(e1.getMessage().contains("in_features"), e1.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Linear(3, 0));
        var e2 = assertThrows(IllegalArgumentException.class, () -> new Conv2d(6, 4, 3, 1, 0, 1, 4, true));
        assertTrue(e2.getMessage().contains("groups"), e2.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Conv2d(4, 6, 3, 1, 0, 1, 4, true),
                "groups must divide out_channels too");
        assertThrows(IllegalArgumentException.class, () -> new Conv2d(4, 4, 0));
        var e3 = assertThrows(IllegalArgumentException.class, () -> new Dropout(1.5));
        assertTrue(e3.getMessage().contains("1.5"), e3.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Dropout(-0.1));
        assertThrows(IllegalArgumentException.class, () -> new Dropout(Double.NaN));
        var e4 = assertThrows(IndexOutOfBoundsException.class, () -> new Embedding(10, 4, 10));
        assertTrue(e4.getMessage().contains("10"), e4.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> new Embedding(10, 4, -12));
        assertThrows(IllegalArgumentException.class, () -> new Embedding(0, 4));
    }

    @Test
    void embeddingPaddingIdxJustBelowTheRangeIsRejected() {
        // PyTorch accepts padding_idx in [-num_embeddings, num_embeddings); -11 for 10 rows is out of
        // range, yet -11 + 10 = -1 would silently mean "no padding" here.
        assertThrows(IndexOutOfBoundsException.class, () -> new Embedding(10, 4, -11).close(),
                "Embedding(10, 4, paddingIdx=-11) must be rejected, not read as 'no padding'");
        try (TensorScope s = TensorScope.open()) {
            Tensor w = Tensor.randn(10, 4);
            assertThrows(IndexOutOfBoundsException.class,
                    () -> Functional.embedding(Tensor.of(new long[] {0}, 1), w, -11), "Functional.embedding too");
        }
    }
}
