package dev.lora4j;

import java.nio.file.Path;
import java.util.List;

/**
 * What lora4j's native shim was built against and runs on, from {@link Torch#buildInfo()}.
 *
 * @param libtorchVersion        the LibTorch version the shim was compiled against, e.g. {@code 2.6.0}
 * @param cxx11Abi               whether the shim (and so the LibTorch it links) uses the C++11
 *                               {@code std::string} ABI ({@code _GLIBCXX_USE_CXX11_ABI=1})
 * @param cuda                   whether the LibTorch in the process has CUDA compiled in (a GPU need
 *                               not be present: see {@link Torch#cudaAvailable()})
 * @param distributed            whether the LibTorch ships distributed (c10d) support
 * @param fusedAttention         whether attention uses LibTorch's fused scaled-dot-product kernel
 *                               (LibTorch 2.x) rather than the plain math (1.13)
 * @param intraOpParallel        whether the shim's own parallel loops (small-batch products, split
 *                               large products, attention, fused optimizers) run on LibTorch's
 *                               intra-op threads; false only for a shim built without the OpenMP
 *                               its LibTorch uses, whose loops then run on the calling thread
 * @param shim                   the {@code liblora4j.so} that was loaded
 * @param signalHandlersRestored the JVM signal handlers that lora4j put back after LibTorch's
 *                               libraries replaced them while loading, one line each (empty when
 *                               none were touched)
 *
 * <p>Immutable and thread-safe.
 */
public record BuildInfo(String libtorchVersion, boolean cxx11Abi, boolean cuda, boolean distributed,
                        boolean fusedAttention, boolean intraOpParallel, Path shim, List<String> signalHandlersRestored) {

    /** The LibTorch line, major.minor (e.g. {@code 2.6}). */
    public String libtorchLine() {
        String[] parts = libtorchVersion.split("\\.");
        return parts.length >= 2 ? parts[0] + "." + parts[1] : libtorchVersion;
    }
}
