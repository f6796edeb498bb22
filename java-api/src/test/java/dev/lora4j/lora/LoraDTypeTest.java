package dev.lora4j.lora;

import static dev.lora4j.lora.LoraLayerTest.assertClose;
import static dev.lora4j.lora.LoraLayerTest.randT;
import static dev.lora4j.lora.LoraLayerTest.randomize;
import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.dylora.DyLora;
import dev.lora4j.dylora.DyLoraLayer;
import dev.lora4j.nn.Conv1d;
import dev.lora4j.nn.Embedding;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/**
 * Adapter factors follow the base weight's dtype as PEFT's do (float32 for float16/bfloat16
 * bases, whose LoRA path runs in float32 and is rounded once into the output): forward, merge
 * and weighted combinations in float64, float32, bfloat16 and float16 against a plain-Java
 * float64 reference computed from the stored (rounded) values.
 */
class LoraDTypeTest {

    /** One child {@code fc}: a Linear 4→3, or what the test puts there. */
    static final class Net extends Module {
        Net(Module child) {
            registerModule("fc", child);
        }

        @Override
        public Tensor forward(Tensor input) {
            return child("fc").forward(input);
        }
    }

    /** Absolute tolerance of an output near 1 computed in {@code dtype}. */
    private static double tol(DType dtype) {
        return switch (dtype) {
            case FLOAT64 -> 1e-12;
            case FLOAT32 -> 1e-5;
            default -> 3e-2; // two roundings to an 8-bit (bfloat16) or 11-bit (float16) mantissa
        };
    }

    /** y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ in float64 from the stored values. */
    static double[] linearReference(double[] x, int n, double[] w, double[] b, double[] a, double[] bb, int in, int out, int r,
                                    double s) {
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < out; o++) {
                double v = b[o];
                for (int k = 0; k < in; k++) v += x[i * in + k] * w[o * in + k];
                for (int q = 0; q < r; q++) {
                    double down = 0;
                    for (int k = 0; k < in; k++) down += x[i * in + k] * a[q * in + k];
                    v += s * down * bb[o * r + q];
                }
                y[i * out + o] = v;
            }
        }
        return y;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT64", "FLOAT32", "BFLOAT16"})
    void linearForwardAndMergeFollowTheBaseDtype(DType dtype) {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Linear(4, 3))) {
            net.to(dtype);
            Lora.wrap(net, LoraConfig.of(2, 3));
            LoraLinear l = (LoraLinear) net.child("fc");
            DType factors = dtype == DType.BFLOAT16 ? DType.FLOAT32 : dtype;
            assertEquals(factors, l.loraA().dtype(), "A's dtype");
            assertEquals(factors, l.loraB().dtype(), "B's dtype");
            randomize(l.loraB(), 3, 0.5);
            Tensor x = randT(5, 1, dtype, 2, 4);
            Tensor y = net.forward(x);
            assertEquals(dtype, y.dtype(), "output dtype");
            Linear base = (Linear) l.baseLayer();
            double[] expected = linearReference(x.toDoubleArray(), 2, base.weight().toDoubleArray(), base.bias().toDoubleArray(),
                    l.loraA().toDoubleArray(), l.loraB().toDoubleArray(), 4, 3, 2, 1.5);
            assertClose(expected, y.toDoubleArray(), 0, tol(dtype), dtype + " forward");
            // A mixed batch: row 0 with the adapter, row 1 with the base alone.
            Tensor mixed = Lora.forward(net, x, LoraLayer.DEFAULT_ADAPTER, AdapterBank.BASE);
            assertEquals(dtype, mixed.dtype(), "mixed-batch output dtype");
            double[] m = mixed.toDoubleArray();
            double[] baseOnly = linearReference(x.toDoubleArray(), 2, base.weight().toDoubleArray(), base.bias().toDoubleArray(),
                    l.loraA().toDoubleArray(), new double[6], 4, 3, 2, 1.5);
            for (int o = 0; o < 3; o++) {
                assertEquals(expected[o], m[o], tol(dtype), "mixed row 0");
                assertEquals(baseOnly[3 + o], m[3 + o], tol(dtype), "mixed row 1");
            }
            assertTrue(Lora.merge(net, true) > 0);
            assertEquals(dtype, base.weight().dtype(), "merged weight dtype");
            assertClose(expected, net.forward(x).toDoubleArray(), 0, tol(dtype), dtype + " merged forward");
        }
    }

    @Test
    void float16MergeComputesInFloat32AndRoundsOnce() {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Linear(4, 3))) {
            net.to(DType.FLOAT16);
            Lora.wrap(net, LoraConfig.of(2, 3));
            LoraLinear l = (LoraLinear) net.child("fc");
            assertEquals(DType.FLOAT32, l.loraA().dtype(), "float16 bases keep float32 factors (PEFT's autocast_adapter_dtype)");
            randomize(l.loraB(), 3, 0.5);
            double[] w = l.baseLayer().parameter("weight").toDoubleArray();
            double[] a = l.loraA().toDoubleArray();
            double[] b = l.loraB().toDoubleArray();
            Lora.merge(net, true);
            double[] merged = l.baseLayer().parameter("weight").toDoubleArray();
            for (int o = 0; o < 3; o++) {
                for (int k = 0; k < 4; k++) {
                    double d = 0;
                    for (int q = 0; q < 2; q++) d += b[o * 2 + q] * a[q * 4 + k];
                    double want = w[o * 4 + k] + 1.5 * d;
                    assertEquals(want, merged[o * 4 + k], Math.ulp((float) want) * 1024 + 1e-3, "merged float16 weight");
                }
            }
        }
    }

    @Test
    void embeddingComputesInFloat64OnAFloat64Table() {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Embedding(5, 3))) {
            net.to(DType.FLOAT64);
            Lora.wrap(net, LoraConfig.of(2, 2));
            LoraEmbedding l = (LoraEmbedding) net.child("fc");
            assertEquals(DType.FLOAT64, l.loraA().dtype());
            randomize(l.loraA(), 7, 0.1); // values float32 cannot hold exactly
            randomize(l.loraB(), 8, 0.1);
            Tensor ids = Tensor.of(new long[] {0, 4, 2}, 3);
            double[] y = net.forward(ids).toDoubleArray();
            double[] table = l.baseLayer().parameter("weight").toDoubleArray();
            double[] a = l.loraA().toDoubleArray(); // (r, num)
            double[] b = l.loraB().toDoubleArray(); // (dim, r)
            long[] id = {0, 4, 2};
            double[] expected = new double[9];
            for (int i = 0; i < 3; i++) {
                for (int d = 0; d < 3; d++) {
                    double v = table[(int) id[i] * 3 + d];
                    for (int q = 0; q < 2; q++) v += a[q * 5 + (int) id[i]] * b[d * 2 + q];
                    expected[i * 3 + d] = v;
                }
            }
            assertClose(expected, y, 0, 1e-14, "float64 embedding LoRA");
        }
    }

    @Test
    void embeddingOnAFloat16TableKeepsTheTablesDtype() {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Embedding(5, 3))) {
            net.to(DType.FLOAT16);
            Lora.wrap(net, LoraConfig.of(2, 2));
            LoraEmbedding l = (LoraEmbedding) net.child("fc");
            assertEquals(DType.FLOAT32, l.loraA().dtype());
            randomize(l.loraA(), 7, 0.1);
            Tensor y = net.forward(Tensor.of(new long[] {1, 3}, 2));
            assertEquals(DType.FLOAT16, y.dtype(), "an embedding's output keeps the table's dtype");
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT64", "BFLOAT16"})
    void convAndDyLoraRunOnFloat64AndBfloat16Bases(DType dtype) {
        try (TensorScope s = TensorScope.open(); Net conv = new Net(new Conv1d(2, 3, 3)); Net lin = new Net(new Linear(4, 3))) {
            conv.to(dtype);
            Lora.wrap(conv, LoraConfig.of(2, 2));
            LoraConv lc = (LoraConv) conv.child("fc");
            randomize(lc.loraB(), 1, 0.5);
            Tensor x = randT(2, 1, dtype, 1, 2, 6);
            Tensor unmerged = conv.forward(x);
            assertEquals(dtype, unmerged.dtype());
            Lora.merge(conv, true);
            if (libTorchConvIsAccurate(dtype)) {
                assertClose(unmerged.toDoubleArray(), conv.forward(x).toDoubleArray(), 0, tol(dtype), dtype + " conv merged = unmerged");
            }

            lin.to(dtype);
            DyLora.wrap(lin, LoraConfig.of(3, 3));
            DyLoraLayer d = (DyLoraLayer) lin.child("fc");
            assertEquals(LoraLayer.factorType(dtype), d.loraA().dtype());
            randomize(d.loraB(), 4, 0.5);
            d.setRank(2);
            Tensor xi = randT(6, 1, dtype, 2, 4);
            Tensor y = lin.forward(xi);
            assertEquals(dtype, y.dtype());
            double[] a = d.loraA().narrow(0, 0, 2).contiguous().toDoubleArray();
            double[] b = d.loraB().narrow(1, 0, 2).contiguous().toDoubleArray();
            Linear base = (Linear) d.baseLayer();
            double[] expected = linearReference(xi.toDoubleArray(), 2, base.weight().toDoubleArray(), base.bias().toDoubleArray(), a,
                    b, 4, 3, 2, 1.5);
            assertClose(expected, y.toDoubleArray(), 0, tol(dtype), dtype + " DyLoRA at rank 2");
        }
    }

    @Test
    void weightedCombinationOfFloat64AdaptersIsNotRoundedToFloat32() {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Linear(4, 3))) {
            net.to(DType.FLOAT64);
            Lora.wrap(net, LoraConfig.of(2, 3));
            Lora.addAdapter(net, "other", LoraConfig.of(1, 2));
            LoraLinear l = (LoraLinear) net.child("fc");
            randomize(l.loraB("default"), 1, 0.1);
            randomize(l.loraB("other"), 2, 0.1);
            randomize(l.loraA("other"), 3, 0.1);
            Lora.addWeightedAdapter(net, List.of("default", "other"), new double[] {0.3, 0.7}, "both", Combination.CAT, 0);
            assertEquals(DType.FLOAT64, l.loraA("both").dtype());
            double[] d1 = l.deltaWeight("default").toDoubleArray();
            double[] d2 = l.deltaWeight("other").toDoubleArray();
            double[] want = new double[d1.length];
            for (int i = 0; i < want.length; i++) want[i] = 0.3 * d1[i] + 0.7 * d2[i];
            assertClose(want, l.deltaWeight("both").toDoubleArray(), 0, 1e-15, "CAT combination in float64");
        }
    }
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT64", "BFLOAT16"})
    void mergedLinearAndParametrizationFollowTheBaseDtype(DType dtype) {
        try (TensorScope s = TensorScope.open(); Linear fused = new Linear(5, 9); Linear p = new Linear(4, 3)) {
            fused.to(dtype);
            MergedLoraLinear m = new MergedLoraLinear(fused, LoraConfig.of(2, 3), true, false, true);
            assertEquals(LoraLayer.factorType(dtype), m.loraA().dtype());
            randomize(m.loraB(), 2, 0.5);
            Tensor x = randT(3, 1, dtype, 2, 5);
            Tensor y = m.forward(x);
            assertEquals(dtype, y.dtype());
            m.merge(true);
            assertClose(y.toDoubleArray(), m.forward(x).toDoubleArray(), 0, tol(dtype), dtype + " MergedLoraLinear merged = unmerged");

            p.to(dtype);
            LoraParametrization lp = LoraParametrization.register(p, 2, 2);
            assertEquals(LoraLayer.factorType(dtype), lp.loraA().dtype());
            Tensor xp = randT(4, 1, dtype, 2, 4);
            assertEquals(dtype, p.forward(xp).dtype(), "a parametrized weight keeps its dtype");
        }
    }

    @Test
    void fanInFanOutOnALinearIsCorrectedAsPeftDoes() {
        try (TensorScope s = TensorScope.open(); Net net = new Net(new Linear(4, 4))) {
            Lora.wrap(net, LoraConfig.of(2, 2).withFanInFanOut(true));
            LoraLinear l = (LoraLinear) net.child("fc");
            assertFalse(l.config().fanInFanOut(), "reset for a Linear (weight (out, in))");
            randomize(l.loraB(), 5, 0.5);
            double[] w = l.baseLayer().parameter("weight").toDoubleArray();
            double[] a = l.loraA().toDoubleArray();
            double[] b = l.loraB().toDoubleArray();
            l.merge();
            double[] merged = l.baseLayer().parameter("weight").toDoubleArray();
            for (int o = 0; o < 4; o++) {
                for (int k = 0; k < 4; k++) {
                    double d = 0;
                    for (int q = 0; q < 2; q++) d += b[o * 2 + q] * a[q * 4 + k];
                    assertEquals(w[o * 4 + k] + d, merged[o * 4 + k], 1e-6, "W + B·A, not its transpose");
                }
            }
        }
    }

    /**
     * Whether LibTorch's own conv1d in {@code dtype} agrees with float64 on a small case. Debian's
     * LibTorch 2.6 computes bfloat16 conv1d on CPU wrongly (off by ~3 on unit inputs; its
     * python3-torch agrees), so a merged-vs-unmerged comparison there would test LibTorch, not lora4j.
     */
    private static boolean libTorchConvIsAccurate(DType dtype) {
        try (TensorScope s = TensorScope.open()) {
            Tensor x = randT(11, 1, DType.FLOAT64, 1, 2, 6);
            Tensor w = randT(12, 1, DType.FLOAT64, 3, 2, 3);
            double[] ref = dev.lora4j.nn.Functional.conv1d(x, w, null).toDoubleArray();
            double[] got = dev.lora4j.nn.Functional.conv1d(x.to(dtype), w.to(dtype), null).toDoubleArray();
            for (int i = 0; i < ref.length; i++) {
                if (Math.abs(ref[i] - got[i]) > tol(dtype) + 0.02 * Math.abs(ref[i])) {
                    System.err.println("skipped: LibTorch's own " + dtype + " conv1d is off (" + got[i] + " for " + ref[i] + ")");
                    return false;
                }
            }
            return true;
        }
    }
}
