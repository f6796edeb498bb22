package dev.lora4j.internal;

import dev.lora4j.testing.ChildJvm;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.Torch;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * LibTorch 2.6 (Debian) links Open MPI, whose UCX library (libucs) installs a SIGSEGV handler
 * when it loads; the JVM's next implicit null check then dies ("SIGSEGV (sent by kill)").
 * lora4j must keep the JVM's handlers on every LibTorch, with no LD_PRELOAD of libjsig.
 */
class SignalHandlersTest {

    @Test
    void theJvmStillHandlesItsOwnSignalsAfterLibTorchLoaded() {
        Torch.manualSeed(1); // loads LibTorch and the shim
        for (int signal : new int[] {SignalHandlers.SIGSEGV, SignalHandlers.SIGBUS, SignalHandlers.SIGFPE}) {
            String owner = SignalHandlers.handlerLibrary(signal).orElse("unknown");
            assertTrue(owner.contains("libjvm") || owner.contains("libjsig"),
                    "signal " + signal + " is handled by " + owner + ", not the JVM (restored: "
                            + Torch.buildInfo().signalHandlersRestored() + ")");
        }
    }

    @Test
    void aChildJvmSurvivesManyImplicitNullChecksAfterHeavyUse() throws Exception {
        ChildJvm.Result r = ChildJvm.run(SignalSurvivalMain.class, List.of());
        assertEquals(0, r.exitCode(), r::toString);
        assertTrue(r.output().contains("survived 40000 null pointer exceptions"), r::toString);
    }
}
