package dev.lora4j;

import dev.lora4j.internal.Critical;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Native memory that the GC cannot see: the bytes of tensors that no scope and no module owns
 * (so that only the {@link SafetyNet} will ever free them when their owner forgets to close
 * them), counted against a budget. Code written in PyTorch's habit, without {@code close} or
 * scopes, leaves such tensors behind at every step; the Java heap hardly grows, so the GC never
 * runs, and without this accounting resident memory would grow without bound.
 *
 * <p>When the count exceeds the budget, the thread creating the tensor does what
 * {@code java.nio} does for direct buffers: it frees what the GC already found unreachable,
 * then runs {@link System#gc()} and frees what that finds, and sets the next trigger one budget
 * above what is still live. From the first such event on, the creation site of every unowned
 * tensor is recorded (cheap enough for code that leaks anyway), and the first time the safety
 * net frees a tensor with a recorded site, one warning names that site.
 *
 * <p>Settings (system properties, read once):
 * <ul>
 *   <li>{@code lora4j.maxUnownedBytes}: the budget, in bytes or with a {@code k}, {@code m}
 *       or {@code g} suffix; default 1/256 of physical memory, at least 32 MiB and at most
 *       256 MiB (a collection per that much garbage is cheap next to what it frees).</li>
 *   <li>{@code lora4j.strictUnowned=true}: strict mode, for tests and development: exceeding
 *       the budget throws {@link IllegalStateException} from the call that created the tensor,
 *       naming where this thread's unowned tensors were created, instead of collecting.</li>
 *   <li>{@code lora4j.trackTensorSites=true}: record creation sites from the start.</li>
 * </ul>
 *
 * <p>What is counted is each tensor's own elements. Native memory that a tensor keeps alive
 * without owning it as elements, above all the autograd graph behind an unclosed loss (its
 * saved activations), is not: a loop that drops whole graphs uses some multiple of the budget
 * before it collects.
 *
 * <p>Internal to {@code dev.lora4j}; thread-safe.
 */
final class NativeBudget {

    static final long BUDGET = budget(System.getProperty("lora4j.maxUnownedBytes"), physicalMemory());
    static final boolean STRICT = Boolean.getBoolean("lora4j.strictUnowned");

    private static final System.Logger LOG = System.getLogger("dev.lora4j");
    private static final AtomicLong UNOWNED = new AtomicLong();
    private static final AtomicBoolean WARNED = new AtomicBoolean();
    private static final Object LOCK = new Object();
    private static final long GIB = 1L << 30;
    private static final long MIB = 1L << 20;

    private static volatile long threshold = BUDGET;
    private static volatile boolean trackSites = STRICT || Boolean.getBoolean("lora4j.trackTensorSites");

    private NativeBudget() {}

    static long add(long bytes) {
        return UNOWNED.addAndGet(bytes);
    }

    /** The shared count and every thread's pending bytes: exact when no other thread is counting. */
    static long unownedBytes() {
        return UNOWNED.get() + SafetyNet.pendingBytes();
    }

    /** Counts a newly unowned tensor; reclaims (or, strict, throws) when over the budget. */
    static void charge(SafetyNet.Ref r, SafetyNet.Registry registry) {
        if (trackSites) r.site = site();
        long bytes = Critical.nbytes(MemorySegment.ofAddress(r.address()));
        if (bytes > 0 && r.count(bytes, registry) && UNOWNED.get() > threshold) pressure(registry);
    }

    /**
     * Over the budget: frees what the GC found unreachable, collects if that was not enough.
     * The shared count is what is compared; this thread's frees land in its pending bytes, so
     * they are published after each step.
     */
    private static void pressure(SafetyNet.Registry registry) {
        synchronized (LOCK) {
            if (UNOWNED.get() <= threshold) return;
            if (STRICT) throw strictFailure(registry);
            trackSites = true;
            SafetyNet.drain();
            registry.publishPending();
            if (UNOWNED.get() > threshold) {
                System.gc();
                awaitReclaim();
                registry.publishPending();
            }
            threshold = saturatedAdd(UNOWNED.get(), BUDGET);
        }
    }

    /** Frees what the collection found, until the reference queue stays empty for a moment. */
    private static void awaitReclaim() {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(500);
        int idle = 0;
        while (idle < 4 && System.nanoTime() < deadline) {
            Object r;
            try {
                r = SafetyNet.QUEUE.remove(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (r == null) {
                idle++;
            } else {
                idle = 0;
                SafetyNet.process(r);
                SafetyNet.drain();
            }
        }
    }

    private static IllegalStateException strictFailure(SafetyNet.Registry registry) {
        StringBuilder b = new StringBuilder()
                .append("tensors owned by no scope and no module hold ").append(UNOWNED.get() / MIB)
                .append(" MiB of native memory, over the budget of ").append(BUDGET / MIB)
                .append(" MiB (lora4j.maxUnownedBytes), and strict mode (lora4j.strictUnowned) forbids"
                        + " leaving them to the garbage collector: close them, or create them inside a TensorScope.");
        List<StackTraceElement[]> sites = registry.sites(3);
        if (!sites.isEmpty()) b.append(" Newest unowned tensors of this thread were created at:");
        for (StackTraceElement[] s : sites) b.append(format(s));
        return new IllegalStateException(b.toString());
    }

    /** Warns, once per process, that the safety net had to free a tensor created at {@code site}. */
    static void warnReclaimed(StackTraceElement[] site, long bytes) {
        if (!WARNED.compareAndSet(false, true)) return;
        LOG.log(System.Logger.Level.WARNING, "lora4j: the safety net freed a tensor of " + bytes
                + " bytes that was never closed and that no scope or module owned; native memory of such tensors"
                + " is only reclaimed by garbage collections that lora4j has to force (budget " + BUDGET / MIB
                + " MiB, lora4j.maxUnownedBytes). Close tensors or create them inside a TensorScope."
                + " Torch.reclaimedTensorCount() counts further cases, which are not logged. It was created at:"
                + format(site));
    }

    private static String format(StackTraceElement[] site) {
        StringBuilder b = new StringBuilder();
        for (StackTraceElement e : site) b.append("\n\tat ").append(e);
        return b.toString();
    }

    /** The caller's frames, without lora4j's own plumbing. */
    private static StackTraceElement[] site() {
        return StackWalker.getInstance().walk(frames -> frames
                .filter(f -> !isPlumbing(f.getClassName()))
                .limit(8)
                .map(StackWalker.StackFrame::toStackTraceElement)
                .toArray(StackTraceElement[]::new));
    }

    private static boolean isPlumbing(String cls) {
        return cls.startsWith("dev.lora4j.internal.") || cls.equals("dev.lora4j.Tensor")
                || cls.startsWith("dev.lora4j.Tensor$") || cls.equals("dev.lora4j.SafetyNet")
                || cls.equals("dev.lora4j.NativeBudget") || cls.startsWith("dev.lora4j.TensorScope");
    }

    /** The budget: the property's value, or 1/256 of physical memory within [32 MiB, 256 MiB]. */
    static long budget(String property, long physical) {
        if (property == null || property.isBlank()) return Math.clamp(physical / 256, 32 * MIB, 256 * MIB);
        String s = property.trim().toLowerCase(Locale.ROOT);
        long unit = switch (s.charAt(s.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> MIB;
            case 'g' -> GIB;
            default -> 1;
        };
        try {
            long n = Long.parseLong(unit == 1 ? s : s.substring(0, s.length() - 1));
            if (n < 0) throw new NumberFormatException();
            return Math.multiplyExact(n, unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("lora4j.maxUnownedBytes must be a byte count such as 536870912 or 512m, got '"
                    + property + "'");
        }
    }

    /** Physical memory from /proc/meminfo, else four times the maximum heap (the JVM's default ratio). */
    private static long physicalMemory() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) return Long.parseLong(line.replaceAll("\\D+", "")) * 1024;
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: fall through
        }
        long heap = Runtime.getRuntime().maxMemory();
        return heap > Long.MAX_VALUE / 4 ? Long.MAX_VALUE : heap * 4;
    }

    private static long saturatedAdd(long a, long b) {
        long r = a + b;
        return ((a ^ r) & (b ^ r)) < 0 ? Long.MAX_VALUE : r;
    }
}
