package dev.lora4j.internal;

import dev.lora4j.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The one way lora4j calls a shim function on tensors: pin the operands (throwing for closed
 * tensors), call, unpin, check the status, and adopt the result into the current scope.
 *
 * <p>Pinning is the lifetime rule of every downcall: a pinned tensor's native memory is not
 * freed until it is unpinned, whatever happens meanwhile on other threads ({@code close()},
 * a scope's end, the safety net); those only mark it closed and leave the free to the last
 * unpin. Every {@link #pin} is paired with an {@link #unpin} in a {@code finally} block.
 *
 * <p>Internal: not part of lora4j's API. Stateless and thread-safe.
 */
public final class Calls {

    /** A shim call with one tensor operand. */
    @FunctionalInterface
    public interface Fn1 {
        int call(MemorySegment a, MemorySegment out);
    }

    /** A shim call with two tensor operands. */
    @FunctionalInterface
    public interface Fn2 {
        int call(MemorySegment a, MemorySegment b, MemorySegment out);
    }

    /** A shim call with three tensor operands (the third may be NULL). */
    @FunctionalInterface
    public interface Fn3 {
        int call(MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment out);
    }

    /** A shim call that changes its operand in place. */
    @FunctionalInterface
    public interface InPlace {
        int call(MemorySegment a);
    }

    /** A shim call that changes its first operand in place from a second one. */
    @FunctionalInterface
    public interface InPlace2 {
        int call(MemorySegment a, MemorySegment b);
    }

    /** Bridges to Tensor's package-private lifetime operations; installed by Tensor. */
    public interface Access {
        MemorySegment pin(Tensor t);

        void unpin(Tensor t);

        Tensor adopt(PerThread thread, long address);

        void own(Tensor t);
    }

    private static volatile Access installed;

    /** Reads the accessor once into a constant the JIT can fold. */
    private static final class Holder {
        static final Access ACCESS = load();

        private static Access load() {
            try {
                Class.forName(Tensor.class.getName(), true, Calls.class.getClassLoader()); // installs it
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException(e);
            }
            return java.util.Objects.requireNonNull(installed, "Tensor did not install its accessor");
        }
    }

    private Calls() {}

    /** Installs Tensor's accessor (once, from Tensor's static initializer). */
    public static void install(Access a) {
        if (installed != null) throw new IllegalStateException("already installed");
        installed = a;
    }

    private static Access access() {
        return Holder.ACCESS;
    }

    /**
     * Pins {@code t} and returns its handle; throws {@link IllegalStateException} for a closed
     * tensor and a {@link NullPointerException} naming the argument for null.
     */
    public static MemorySegment pin(Tensor t, String name) {
        if (t == null) throw new NullPointerException(name);
        return access().pin(t);
    }

    /** As {@link #pin}, for an optional operand: NULL (and nothing pinned) when t is null. */
    public static MemorySegment pinOrNull(Tensor t) {
        return t == null ? MemorySegment.NULL : access().pin(t);
    }

    /** Ends a {@link #pin}; no-op for null (the optional operand that was absent). */
    public static void unpin(Tensor t) {
        if (t != null) access().unpin(t);
    }

    /**
     * Pins every tensor of the list {@code ts} (none may be null; a null one is named
     * {@code name[i]}) and returns their handles; pins nothing when it throws. Pair with
     * {@link #unpinAll}.
     */
    public static MemorySegment[] pinAll(Tensor[] ts, String name) {
        return pinAll(ts, name, null);
    }

    /** As {@link #pinAll(Tensor[], String)}, the operands named one by one by {@code names}. */
    public static MemorySegment[] pinAll(Tensor[] ts, String[] names) {
        return pinAll(ts, null, names);
    }

    private static MemorySegment[] pinAll(Tensor[] ts, String list, String[] names) {
        MemorySegment[] handles = new MemorySegment[ts.length];
        int i = 0;
        try {
            for (; i < ts.length; i++) {
                if (ts[i] == null) throw new NullPointerException(names != null ? names[i] : list + "[" + i + "]");
                handles[i] = access().pin(ts[i]);
            }
        } catch (RuntimeException e) {
            for (int j = 0; j < i; j++) unpin(ts[j]);
            throw e;
        }
        return handles;
    }

    public static void unpinAll(Tensor[] ts) {
        for (Tensor t : ts) unpin(t);
    }

    /**
     * Takes {@code t} out of every scope for an owner that frees it itself (a module); the
     * safety net still covers it, and it no longer counts as native memory owned by nobody.
     */
    public static void own(Tensor t) {
        access().own(t);
    }

    /** Wraps a fresh native handle as a Tensor owned by the current scope (or the caller). */
    public static Tensor adopt(PerThread thread, long address) {
        return access().adopt(thread, address);
    }

    public static Tensor call(String op, Tensor a, Fn1 f) {
        PerThread t = PerThread.get();
        MemorySegment ha = pin(a, "self");
        try {
            Status.check(f.call(ha, t.out0), op);
        } finally {
            unpin(a);
        }
        return adopt(t, PerThread.address(t.out0));
    }

    public static Tensor call(String op, Tensor a, Tensor b, Fn2 f) {
        PerThread t = PerThread.get();
        MemorySegment ha = pin(a, "self");
        try {
            MemorySegment hb = pin(b, "other");
            try {
                Status.check(f.call(ha, hb, t.out0), op);
            } finally {
                unpin(b);
            }
        } finally {
            unpin(a);
        }
        return adopt(t, PerThread.address(t.out0));
    }

    public static Tensor call(String op, Tensor a, Tensor b, Tensor c, Fn3 f) {
        PerThread t = PerThread.get();
        MemorySegment ha = pin(a, "input");
        try {
            MemorySegment hb = pin(b, "weight");
            try {
                MemorySegment hc = pinOrNull(c);
                try {
                    Status.check(f.call(ha, hb, hc, t.out0), op);
                } finally {
                    unpin(c);
                }
            } finally {
                unpin(b);
            }
        } finally {
            unpin(a);
        }
        return adopt(t, PerThread.address(t.out0));
    }

    public static void inPlace(String op, Tensor a, InPlace f) {
        PerThread.applyGradMode(); // autograd records in-place ops
        MemorySegment ha = pin(a, "self");
        try {
            Status.check(f.call(ha), op);
        } finally {
            unpin(a);
        }
    }

    public static void inPlace(String op, Tensor a, Tensor b, InPlace2 f) {
        PerThread.applyGradMode();
        MemorySegment ha = pin(a, "self");
        try {
            MemorySegment hb = pin(b, "other");
            try {
                Status.check(f.call(ha, hb), op);
            } finally {
                unpin(b);
            }
        } finally {
            unpin(a);
        }
    }
}
