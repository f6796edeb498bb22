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
 * Chooses OpenMP's wait policy before LibTorch is loaded: LibTorch's threads spin briefly after
 * a parallel region, then sleep.
 *
 * <p>LibTorch runs its intra-op parallel regions on GNU OpenMP (libgomp). By default libgomp's
 * threads busy-wait for 300,000 spins (milliseconds) after every parallel region, waiting for the
 * next one. With OpenBLAS's own thread pool beside them (Debian's {@code libopenblas0-pthread})
 * the spinning OpenMP thread took the core an OpenBLAS thread needed after nearly every
 * operation, and 2 threads were slower than 1 on 2 cores. The shim now pins OpenBLAS to one
 * thread and splits large products over the OpenMP threads itself, so that contest is gone.
 * What remains is the cost of each wait: a thread that sleeps at once (passive) must be woken by
 * a futex call for the next region, tens of microseconds on a virtual machine, which a training
 * step of many small regions pays many times; a thread that spins forever (active) takes a core
 * from the JVM's own threads and from other processes. The default is in between: passive, with
 * a short spin first ({@code GOMP_SPINCOUNT=30000}, about 0.1–0.3 ms), so that the regions of
 * one step find their threads awake and an idle process sleeps. libgomp drops the spin by itself
 * when it manages more threads than the machine has cores (several request threads each running
 * parallel regions), so it never oversubscribes.
 *
 * <p>libgomp reads {@code OMP_WAIT_POLICY} and {@code GOMP_SPINCOUNT} once, when it is loaded
 * (as a dependency of LibTorch), so {@link #apply()} runs before the shim and LibTorch are
 * loaded and sets them in the process's environment with the C library's {@code setenv},
 * decided as follows:
 * <ul>
 *   <li>{@code -Dlora4j.ompWaitPolicy=short}, {@code passive} or {@code active}, whatever the
 *       environment says: {@code short} is the default below; {@code passive} sleeps at once
 *       ({@code OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=0}); {@code active} spins
 *       ({@code OMP_WAIT_POLICY=ACTIVE}, any {@code GOMP_SPINCOUNT} removed);
 *   <li>{@code -Dlora4j.ompWaitPolicy=default}: nothing is changed (the environment's
 *       variables, or libgomp's own default);
 *   <li>no property, and the environment already sets {@code OMP_WAIT_POLICY} or
 *       {@code GOMP_SPINCOUNT}: left alone (the user's choice wins);
 *   <li>otherwise: {@code OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000}.
 * </ul>
 * Nothing is set when libgomp is already loaded into the process (something loaded LibTorch
 * or another OpenMP user first): the setting could no longer take effect, and
 * {@link #describe()} says so. {@link #describe()} reports what was decided,
 * {@link #ompWaitPolicy()} and {@link #gompSpinCount()} the values libgomp saw.
 *
 * <p>The change is process-wide: another OpenMP library loaded later in the same process reads
 * the same variables. Child processes started afterwards inherit them through the C environment
 * (but Java's {@link System#getenv()} is a snapshot taken at start-up and does not show them).
 *
 * <p>Thread-safety: {@link #apply()} is called once, from {@link NativeLibrary}'s class
 * initializer; {@code setenv} is not safe against a concurrent {@code getenv} in another native
 * thread, which is why it runs before any LibTorch thread exists. The accessors are thread-safe.
 */
public final class ThreadDefaults {

    /** The system property that overrides the choice: {@code short}, {@code passive}, {@code active} or {@code default}. */
    public static final String PROPERTY = "lora4j.ompWaitPolicy";
    static final String VARIABLE = "OMP_WAIT_POLICY";
    static final String SPIN = "GOMP_SPINCOUNT";
    /** Spins of the default: libgomp estimates 100,000 per millisecond. */
    static final String SHORT_SPIN = "30000";

    private static volatile String decision = "not configured";

    private ThreadDefaults() {}

    /** Decides and sets the wait policy as the class comment says; call before LibTorch loads. */
    static void apply() {
        String property = System.getProperty(PROPERTY);
        String choice;
        if (property != null) {
            choice = property.trim().toLowerCase(Locale.ROOT);
            if (!choice.equals("short") && !choice.equals("passive") && !choice.equals("active") && !choice.equals("default"))
                throw new IllegalArgumentException(
                        "-D" + PROPERTY + " must be 'short', 'passive', 'active' or 'default', got '" + property + "'");
            if (choice.equals("default")) {
                decision = "left to the environment (-D" + PROPERTY + "=default)";
                return;
            }
        } else if (getenv(VARIABLE).isPresent() || getenv(SPIN).isPresent()) {
            decision = "set by the environment, left alone";
            return;
        } else {
            choice = "short";
        }
        String policy = choice.equals("active") ? "ACTIVE" : "PASSIVE";
        String spin = switch (choice) {
            case "short" -> SHORT_SPIN;
            case "passive" -> "0";
            default -> null; // active: libgomp's own active spin
        };
        String setting = VARIABLE + "=" + policy + (spin != null ? " " + SPIN + "=" + spin : "");
        if (openMpAlreadyLoaded()) {
            decision = "not set: libgomp was loaded before lora4j, too late for " + setting;
            return;
        }
        boolean done = setenv(VARIABLE, policy) && (spin != null ? setenv(SPIN, spin) : unsetenv(SPIN));
        decision = done
                ? setting + " set by lora4j" + (property != null ? " (-D" + PROPERTY + ")" : "")
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

    /** The process's {@code GOMP_SPINCOUNT} as the C library (and so libgomp) sees it, if set. */
    public static Optional<String> gompSpinCount() {
        return getenv(SPIN);
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

    private static boolean unsetenv(String name) {
        MethodHandle unsetenv = libc("unsetenv", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS)).orElse(null);
        if (unsetenv == null) return false;
        try (Arena arena = Arena.ofConfined()) {
            return (int) unsetenv.invokeExact(arena.allocateFrom(name)) == 0;
        } catch (Throwable t) {
            throw new IllegalStateException("unsetenv(" + name + ") failed", t);
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
