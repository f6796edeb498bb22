package dev.lora4j.optim;

import static org.junit.jupiter.api.Assertions.*;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;

/** Training is single-threaded per model: an optimizer used from a second thread is detected. */
class OptimizerThreadTest {

    @Test
    void aSecondThreadIsRefusedUntilTheFirstHandsOver() throws Exception {
        ExecutorService other = Executors.newSingleThreadExecutor();
        try (TensorScope s = TensorScope.open(); SGD opt = new SGD(List.of(Tensor.ones(3).requiresGrad_(true)), 0.1)) {
            opt.zeroGrad(); // binds to this thread
            var e = assertThrows(ExecutionException.class, () -> other.submit(() -> opt.step()).get());
            assertInstanceOf(IllegalStateException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("single-threaded"), e.getCause().getMessage());
            assertThrows(ExecutionException.class, () -> other.submit(() -> opt.zeroGrad()).get());

            opt.handOver();
            other.submit(() -> opt.zeroGrad()).get(); // the other thread trains now
            assertThrows(IllegalStateException.class, opt::step, "and this one is refused");
            other.submit(opt::handOver).get();
            opt.step();
        } finally {
            other.shutdown();
        }
    }

    @Test
    void aDeadTrainingThreadReleasesTheOptimizer() throws Exception {
        try (TensorScope s = TensorScope.open(); SGD opt = new SGD(List.of(Tensor.ones(2).requiresGrad_(true)), 0.1)) {
            Thread t = new Thread(opt::zeroGrad);
            t.start();
            t.join();
            assertDoesNotThrow(() -> opt.zeroGrad(), "the thread that trained is gone");
        }
    }
}
