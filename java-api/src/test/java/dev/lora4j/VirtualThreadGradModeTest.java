package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * Grad mode belongs to the Java thread, also on virtual threads. LibTorch keeps it per OS
 * thread, and a virtual thread that blocks inside {@code Torch.noGrad()} may resume on another
 * carrier: the scope used to leave its first carrier with grad off (so an unrelated virtual
 * thread scheduled there trained nothing: "element 0 of tensors does not require grad") and to
 * run on the second with that carrier's mode.
 */
class VirtualThreadGradModeTest {

    private static boolean recordsGraph() {
        try (TensorScope s = TensorScope.open()) {
            return Tensor.ones(3).requiresGrad_(true).mul(2.0).requiresGrad();
        }
    }

    @Test
    void noGradScopesThatBlockOnVirtualThreadsChangeNoOtherThreadsMode() throws Exception {
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<String>> scoped = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                scoped.add(ex.submit(() -> {
                    try (var ng = Torch.noGrad()) {
                        for (int k = 0; k < 3; k++) {
                            Thread.sleep(2); // unmounts: may resume on another carrier
                            if (Torch.isGradEnabled() || recordsGraph()) return "grad mode on inside noGrad after a block";
                        }
                    }
                    return Torch.isGradEnabled() && recordsGraph() ? "ok" : "grad mode off after noGrad closed";
                }));
            }
            for (Future<String> f : scoped) assertEquals("ok", f.get());
            List<Future<String>> plain = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                plain.add(ex.submit(() -> {
                    Thread.sleep(1);
                    return Torch.isGradEnabled() && recordsGraph() ? "ok" : "a virtual thread started with grad mode off";
                }));
            }
            for (Future<String> f : plain) assertEquals("ok", f.get());
        }
    }
}
