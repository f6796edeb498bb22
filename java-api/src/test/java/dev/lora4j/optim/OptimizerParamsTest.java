package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Sequential;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * An optimizer takes each parameter once: a tensor listed twice, an alias() of one (another Java
 * handle on the same native tensor) or two parameters over the same memory would be stepped twice
 * per step with independent state (Adam's first step moved 1.0 to 0.8 instead of 0.9), so they are
 * refused naming both indices, in the fused path and in LibTorch's. Parameters over disjoint parts
 * of one buffer, and one parameter in two optimizers (as PyTorch), stay allowed.
 */
class OptimizerParamsTest {

    private static final List<Function<List<Tensor>, Optimizer>> KINDS = List.of(
            ps -> new SGD(ps, 0.1),
            ps -> new Adam(ps, Adam.lr(0.1)),
            ps -> new AdamW(ps, AdamW.lr(0.1)));

    private static void assertRefused(List<Tensor> params, int i, int j, String why) {
        for (var kind : KINDS) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> kind.apply(params).close(), why);
            assertTrue(e.getMessage().contains("params[" + i + "] and params[" + j + "]"), e.getMessage());
        }
    }

    /** sum(p) backward: gradient 1 everywhere. */
    private static void gradOnes(Tensor p) {
        p.sum().backward();
    }

    @Test
    void aParameterListedTwiceIsRefused() {
        try (TensorScope s = TensorScope.open()) {
            Tensor w = Tensor.ones(3).requiresGrad_(true);
            // The truth: one listing, one Adam step with gradient 1 moves every element by lr.
            try (Adam once = new Adam(List.of(w), Adam.lr(0.1))) {
                gradOnes(w);
                once.step();
            }
            assertArrayEquals(new double[] {0.9, 0.9, 0.9}, w.toDoubleArray(), 1e-6);
            assertRefused(List.of(w, w), 0, 1, "listed twice");
            Tensor other = Tensor.zeros(2).requiresGrad_(true);
            assertRefused(List.of(other, w, Tensor.ones(4).requiresGrad_(true), w), 1, 3, "listed twice, apart");
            assertRefused(List.of(w, other, w.alias()), 0, 2, "an alias");
            assertArrayEquals(new double[] {0.9, 0.9, 0.9}, w.toDoubleArray(), 1e-6, "nothing stepped");
        }
    }

    /** The same in LibTorch's own optimizers (half precision and strided parameters are not fused). */
    @Test
    void theUnfusedPathRefusesThemToo() {
        try (TensorScope s = TensorScope.open()) {
            Tensor half = Tensor.ones(3).to(DType.FLOAT16).requiresGrad_(true);
            assertRefused(List.of(half, half.alias()), 0, 1, "float16 alias");
            Tensor strided = Tensor.randn(3, 4).t().detach().requiresGrad_(true);
            assertFalse(strided.isContiguous());
            assertRefused(List.of(strided, strided), 0, 1, "strided, listed twice");
            assertRefused(List.of(strided, strided.detach().requiresGrad_(true)), 0, 1, "strided, same memory");
        }
    }

    @Test
    void parametersOverTheSameMemoryAreRefused() {
        try (TensorScope s = TensorScope.open()) {
            Tensor w = Tensor.ones(3).requiresGrad_(true);
            Tensor sameData = w.detach().requiresGrad_(true);
            assertRefused(List.of(w, sameData), 0, 1, "a detach() of a parameter");
            Tensor buffer = Tensor.zeros(6);
            Tensor left = buffer.narrow(0, 0, 4).requiresGrad_(true);
            Tensor right = buffer.narrow(0, 2, 4).requiresGrad_(true);
            assertRefused(List.of(left, right), 0, 1, "overlapping views");
            Tensor flat = Tensor.zeros(12);
            Tensor rows = flat.view(3, 4).requiresGrad_(true);
            Tensor lastRow = flat.narrow(0, 8, 4).requiresGrad_(true);
            assertRefused(List.of(rows, lastRow), 0, 1, "a row of a 2-D view");
        }
    }

    /** Disjoint parts of one buffer are separate parameters, stepped once each. */
    @Test
    void disjointViewsOfOneBufferAreSeparateParameters() {
        try (TensorScope s = TensorScope.open()) {
            Tensor buffer = Tensor.ones(6);
            Tensor first = buffer.narrow(0, 0, 3).requiresGrad_(true);
            Tensor second = buffer.narrow(0, 3, 3).requiresGrad_(true);
            try (SGD sgd = new SGD(List.of(first, second), 0.1)) {
                first.sum().backward();
                second.mul(Tensor.of(new double[] {2, 2, 2}, 3).to(DType.FLOAT32)).sum().backward();
                sgd.step();
            }
            assertArrayEquals(new double[] {0.9, 0.9, 0.9, 0.8, 0.8, 0.8}, buffer.toDoubleArray(), 1e-6);
        }
    }

    /** As in PyTorch, two optimizers may hold the same parameter: each steps it. */
    @Test
    void oneParameterInTwoOptimizersIsAllowed() {
        try (TensorScope s = TensorScope.open()) {
            Tensor w = Tensor.ones(3).requiresGrad_(true);
            try (SGD a = new SGD(List.of(w), 0.1); SGD b = new SGD(List.of(w.alias()), 0.2)) {
                gradOnes(w);
                a.step();
                b.step();
            }
            assertArrayEquals(new double[] {0.7, 0.7, 0.7}, w.toDoubleArray(), 1e-6);
        }
    }

    /**
     * A module used twice in a model gives its parameters once (PyTorch's parameters()), so an
     * optimizer over the model's trainable parameters steps the shared layer once.
     */
    @Test
    void aSharedModuleGivesItsParametersOnce() {
        try (TensorScope s = TensorScope.open()) {
            Linear shared = new Linear(3, 3);
            try (Sequential m = new Sequential(shared, shared)) {
                assertEquals(4, m.namedParameters().size(), "both paths are named (as a state dict)");
                assertEquals(2, m.parameters().size());
                assertEquals(2, m.trainableParameters().size());
                assertEquals(12, m.parameterCount());
                assertEquals(12, m.trainableParameterCount());
                Tensor w0 = shared.parameter("weight").detach().clone();
                try (SGD sgd = new SGD(m.trainableParameters(), 0.1)) {
                    shared.parameter("weight").sum().backward();
                    sgd.step();
                }
                assertTrue(shared.parameter("weight").allclose(w0.sub(0.1), 1e-6, 1e-6), "one step of lr · 1");
            }
        }
    }
}
