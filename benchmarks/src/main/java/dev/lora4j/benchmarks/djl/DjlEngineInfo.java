package dev.lora4j.benchmarks.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.pytorch.jni.LibUtils;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Starts DJL's PyTorch engine and, once per JVM, prints which LibTorch it loaded: the engine's
 * version, DJL's LibTorch folder, its intra/inter-op thread counts, and the libtorch/libdjl_torch
 * files mapped into the process (from /proc/self/maps), so a run shows whether DJL used
 * Debian's LibTorch or a downloaded one.
 */
final class DjlEngineInfo {

    private static final AtomicBoolean PRINTED = new AtomicBoolean();

    private DjlEngineInfo() {}

    static NDManager newManager() {
        Engine engine = Engine.getEngine("PyTorch");
        if (PRINTED.compareAndSet(false, true)) {
            System.out.println("[djl] engine " + engine.getEngineName() + " " + engine.getVersion()
                    + ", libtorch folder " + LibUtils.getLibtorchPath()
                    + ", intra-op threads " + JniUtils.getNumThreads()
                    + ", inter-op threads " + JniUtils.getNumInteropThreads());
            try {
                Files.readAllLines(Path.of("/proc/self/maps")).stream()
                        .map(l -> l.substring(l.lastIndexOf(' ') + 1))
                        .filter(p -> p.contains("libtorch") || p.contains("libc10") || p.contains("djl_torch"))
                        .distinct()
                        .forEach(p -> System.out.println("[djl] mapped " + p));
            } catch (IOException | RuntimeException e) {
                System.out.println("[djl] cannot read /proc/self/maps: " + e);
            }
        }
        return engine.newBaseManager();
    }
}
