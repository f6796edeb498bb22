package dev.lora4j.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * Chooses OpenMP's wait policy before LibTorch is loaded, so that LibTorch's threads do not
 * spin between parallel regions on a few cores.
 *
 * <p>LibTorch runs its intra-op parallel regions on GNU OpenMP (libgomp). By default libgomp's
 * threads busy-wait for a while (300,000 spins) after every parallel region, waiting for the
 * next one. With OpenBLAS's own thread pool beside them (Debian's {@code libopenblas0-pthread})
 * the spinning OpenMP thread took the core an OpenBLAS thread needed after nearly every
 * operation, and 2 threads were slower than 1 on 2 cores. The shim now pins OpenBLAS to one
 * thread and splits large products over the OpenMP threads itself, so that contest is gone;
 * the passive policy stays the default because spinning threads still take cores from the
 * JVM's own threads and from other processes of a service. Its price is a futex wake-up per
 * parallel region.
 *
 * <p>libgomp reads {@code OMP_WAIT_POLICY} once, when it is loaded (as a dependency of
 * LibTorch), so {@link #apply()} runs before the shim and LibTorch are loaded and sets it in the
 * process's environment with the C library's {@code setenv}, decided as follows:
 * <ul>
 *   <li>{@code -Dlora4j.ompWaitPolicy=passive} or {@code active}: that policy, whatever the
 *       environment says;
 *   <li>{@code -Dlora4j.ompWaitPolicy=default}: nothing is changed (the environment's
 *       {@code OMP_WAIT_POLICY}, or libgomp's own default);
 *   <li>no property, and the environment already sets {@code OMP_WAIT_POLICY} or
 *       {@code GOMP_SPINCOUNT}: left alone (the user's choice wins);
 *   <li>otherwise: {@code OMP_WAIT_POLICY=PASSIVE}.
 * </ul>
 * Nothing is set when libgomp is already loaded into the process (something loaded LibTorch
 * or another OpenMP user first): the setting could no longer take effect, and
 * {@link #describe()} says so. {@link #describe()} reports what was decided and
 * {@link #ompWaitPolicy()} the value libgomp saw.
 *
 * <p>The change is process-wide: another OpenMP library loaded later in the same process reads
 * the same variable. Child processes started afterwards inherit it through the C environment
 * (but Java's {@link System#getenv()} is a snapshot taken at start-up and does not show it).
 *
 * <p>Thread-safety: {@link #apply()} is called once, from {@link NativeLibrary}'s class
 * initializer; {@code setenv} is not safe against a concurrent {@code getenv} in another native
 * thread, which is why it runs before any LibTorch thread exists. The accessors are thread-safe.
 */
public final class ThreadDefaults {

    /** The system property that overrides the choice: {@code passive}, {@code active} or {@code default}. */
    public static final String PROPERTY = "lora4j.ompWaitPolicy";
    static final String VARIABLE = "OMP_WAIT_POLICY";

    private static volatile String decision = "not configured";

    private ThreadDefaults() {}

    /** Decides and sets {@code OMP_WAIT_POLICY} as the class comment says; call before LibTorch loads. */
    static void apply() {
        String property = System.getProperty(PROPERTY);
        String wanted;
        if (property != null) {
            wanted = switch (property.trim().toLowerCase(Locale.ROOT)) {
                case "passive" -> "PASSIVE";
                case "active" -> "ACTIVE";
                case "default" -> null;
                default -> throw new IllegalArgumentException(
                        "-D" + PROPERTY + " must be 'passive', 'active' or 'default', got '" + property + "'");
            };
            if (wanted == null) {
                decision = "left to the environment (-D" + PROPERTY + "=default)";
                return;
            }
        } else if (getenv(VARIABLE).isPresent() || getenv("GOMP_SPINCOUNT").isPresent()) {
            decision = "set by the environment, left alone";
            return;
        } else {
            wanted = "PASSIVE";
        }
        if (openMpAlreadyLoaded()) {
            decision = "not set: libgomp was loaded before lora4j, too late for " + VARIABLE + "=" + wanted;
            return;
        }
        decision = setenv(VARIABLE, wanted)
                ? VARIABLE + "=" + wanted + " set by lora4j" + (property != null ? " (-D" + PROPERTY + ")" : "")
                : "not set: the C library has no setenv";
    }

    /** What lora4j decided about OpenMP's wait policy at load, in words. */
    public static String describe() {
        return decision;
    }

    /** The process's {@code OMP_WAIT_POLICY} as the C library (and so libgomp) sees it, if set. */
    public static Optional<String> ompWaitPolicy() {
        return getenv(VARIABLE);
    }

    /** Whether libgomp is mapped into this process already (Linux; false where that cannot be told). */
    private static boolean openMpAlreadyLoaded() {
        Path maps = Path.of("/proc/self/maps");
        if (!Files.isReadable(maps)) return false;
        try {
            return Files.readString(maps).contains("libgomp");
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static Optional<MethodHandle> libc(String name, FunctionDescriptor descriptor) {
        Linker linker = Linker.nativeLinker();
        return linker.defaultLookup().find(name).map(address -> linker.downcallHandle(address, descriptor));
    }

    private static Optional<String> getenv(String name) {
        MethodHandle getenv = libc("getenv", FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS)).orElse(null);
        if (getenv == null) return Optional.ofNullable(System.getenv(name));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = (MemorySegment) getenv.invokeExact(arena.allocateFrom(name));
            return value.equals(MemorySegment.NULL)
                    ? Optional.empty()
                    : Optional.of(value.reinterpret(Long.MAX_VALUE).getString(0));
        } catch (Throwable t) {
            throw new IllegalStateException("getenv(" + name + ") failed", t);
        }
    }

    private static boolean setenv(String name, String value) {
        MethodHandle setenv = libc("setenv", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                ValueLayout.ADDRESS, ValueLayout.JAVA_INT)).orElse(null);
        if (setenv == null) return false;
        try (Arena arena = Arena.ofConfined()) {
            return (int) setenv.invokeExact(arena.allocateFrom(name), arena.allocateFrom(value), 1) == 0;
        } catch (Throwable t) {
            throw new IllegalStateException("setenv(" + name + ") failed", t);
        }
    }
}
