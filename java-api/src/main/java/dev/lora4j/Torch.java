package dev.lora4j;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.internal.NativeLibrary;
import dev.lora4j.internal.SignalHandlers;
import dev.lora4j.internal.Status;
import dev.lora4j.internal.ThreadDefaults;

/**
 * Library-wide settings and facts, as in PyTorch's {@code torch} module: random seed,
 * intra-op threads, LibTorch version, devices, grad mode.
 *
 * <p>Thread-safe. The seed and the thread count are process-wide; the grad mode is per thread.
 */
public final class Torch {

    static {
        NativeLibrary.ensureLoaded();
    }

    private Torch() {}

    /** Seeds LibTorch's default random generator, as {@code torch.manual_seed}. */
    public static void manualSeed(long seed) {
        Status.check(lt_manual_seed(seed), "manualSeed");
    }

    /**
     * The most intra-op threads {@link #setNumThreads} accepts: 4 per available processor,
     * and at least 64. LibTorch builds its thread pool without checking that the threads can
     * be created; thousands of them leave it half-built and the next operation crashes.
     */
    public static int maxNumThreads() {
        return Math.max(64, 4 * Runtime.getRuntime().availableProcessors());
    }

    /**
     * Sets LibTorch's intra-op threads, as {@code torch.set_num_threads}; {@code threads} must be
     * in 1..{@link #maxNumThreads()}. OpenBLAS keeps the one thread lora4j pinned it to at load
     * (the environment variable {@code LORA4J_BLAS_THREADS=n} pins {@code n} instead, read once):
     * lora4j splits its large matrix products over the intra-op threads itself, so one thread
     * pool, waiting passively, does all the work (see the README's Threads section).
     */
    public static void setNumThreads(int threads) {
        int max = maxNumThreads();
        if (threads < 1 || threads > max) {
            throw new IllegalArgumentException("threads must be in 1.." + max + " (4 per available processor, at least 64), got "
                    + threads);
        }
        Status.check(lt_set_num_threads(threads), "setNumThreads");
    }

    /** LibTorch's intra-op threads, as {@code torch.get_num_threads}. */
    public static int getNumThreads() {
        return lt_get_num_threads();
    }

    /**
     * The process's thread configuration, in words: intra-op threads and OpenMP's wait policy,
     * with who chose it. By default lora4j sets {@code OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000}
     * (a short spin, then sleep) before LibTorch loads, unless the environment sets
     * {@code OMP_WAIT_POLICY} or {@code GOMP_SPINCOUNT};
     * {@code -Dlora4j.ompWaitPolicy=short|passive|active|default} overrides (see the README's
     * Threads section). For example {@code "intra-op threads 2; OMP_WAIT_POLICY=PASSIVE
     * GOMP_SPINCOUNT=30000 set by lora4j; environment: OMP_WAIT_POLICY=PASSIVE
     * GOMP_SPINCOUNT=30000; OpenBLAS threads 1"}.
     */
    public static String threadSettings() {
        int blas = lt_blas_threads();
        return "intra-op threads " + getNumThreads() + "; " + ThreadDefaults.describe()
                + "; environment: OMP_WAIT_POLICY=" + ThreadDefaults.ompWaitPolicy().orElse("(unset)")
                + " GOMP_SPINCOUNT=" + ThreadDefaults.gompSpinCount().orElse("(unset)")
                + (blas > 0 ? "; OpenBLAS threads " + blas : "; BLAS not OpenBLAS");
    }

    /** The LibTorch version the shim was compiled against, e.g. {@code "1.13.0"}. */
    public static String version() {
        return lt_version().reinterpret(Long.MAX_VALUE).getString(0);
    }

    /**
     * What the native shim was built against (LibTorch version, C++ ABI, CUDA, distributed) and
     * which shim file was loaded.
     */
    public static BuildInfo buildInfo() {
        return new BuildInfo(version(), lt_build_cxx11_abi() != 0, lt_build_has_cuda() != 0,
                lt_build_has_distributed() != 0, lt_build_has_fused_attention() != 0,
                lt_build_intra_op_parallel() != 0, NativeLibrary.shim(),
                SignalHandlers.report());
    }

    /**
     * Whether a CUDA device can be used: false on a CPU-only LibTorch, and on a CUDA LibTorch
     * without a GPU ({@link BuildInfo#cuda()} tells whether CUDA is compiled in).
     */
    public static boolean cudaAvailable() {
        return lt_device_count(LT_DEVICE_CUDA()) > 0;
    }

    /**
     * The device named by {@code spec} ({@code "cpu"}, {@code "cuda"}, {@code "cuda:1"}), checked
     * to exist: asking for CUDA on a CPU-only LibTorch throws {@link IllegalStateException}.
     */
    public static Device device(String spec) {
        Device d = Device.parse(spec);
        if (d.type() == Device.Type.CUDA) {
            int count = lt_device_count(LT_DEVICE_CUDA());
            if (count == 0) {
                throw new IllegalStateException("device '" + spec + "' requested, but CUDA is not available:"
                        + " this LibTorch (" + version() + ") is CPU-only or no GPU is present");
            }
            if (d.index() >= count) {
                throw new IllegalStateException("device '" + spec + "' requested, but only " + count + " CUDA device(s) exist");
            }
        }
        return d;
    }

    /** Disables gradient recording on this thread until the returned scope closes. */
    public static NoGradScope noGrad() {
        return new NoGradScope();
    }

    /** Whether autograd records operations on this thread. */
    public static boolean isGradEnabled() {
        NoGradScope.closeDropped(dev.lora4j.internal.PerThread.get());
        return lt_grad_is_enabled() != 0;
    }

    /**
     * How many tensors the safety net had to free because they became unreachable without
     * being closed (and were owned by no scope). Zero in code that manages its tensors.
     */
    public static long reclaimedTensorCount() {
        return Tensor.reclaimedCount();
    }

    /**
     * Native bytes held by live tensors that no scope and no module owns: the memory that only
     * closing them or the safety net frees. The garbage collector does not see it, so lora4j
     * counts it against a budget ({@link #maxUnownedTensorBytes()}); past the budget, the
     * thread creating such a tensor collects and frees unreachable ones first, as
     * {@code java.nio} does for direct buffers, and the first tensor freed that way is reported
     * once (a {@link System.Logger} warning naming where it was created). With the system
     * property {@code lora4j.strictUnowned=true}, exceeding the budget throws
     * {@link IllegalStateException} instead; {@code lora4j.trackTensorSites=true} records
     * creation sites from the start (they are recorded from the first collection on anyway).
     * Views of one storage count once each (an overestimate, never an underestimate).
     */
    public static long unownedTensorBytes() {
        return NativeBudget.unownedBytes();
    }

    /**
     * The budget for {@link #unownedTensorBytes()}: the system property
     * {@code lora4j.maxUnownedBytes} (bytes, or with a k, m or g suffix) read at startup, else
     * 1/256 of physical memory, at least 32 MiB and at most 256 MiB.
     */
    public static long maxUnownedTensorBytes() {
        return NativeBudget.BUDGET;
    }
}
