package dev.lora4j.internal;

import dev.lora4j.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;

/**
 * The one way lora4j calls a shim function that returns a new tensor: fetch the operands'
 * handles (throwing for closed tensors), call, check the status, adopt the result into the
 * current scope, and keep the operands reachable until the call returned (so the Cleaner
 * safety net can never free an operand while LibTorch is using it).
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

    /** Bridges to Tensor's package-private handle accessors; installed by Tensor. */
    public interface Access {
        MemorySegment handle(Tensor t);

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

    /** The live handle of {@code t}; throws for a closed tensor. Does not keep t alive. */
    public static MemorySegment handle(Tensor t) {
        return access().handle(t);
    }

    /** As {@link #handle(Tensor)}, with a NullPointerException naming the argument. */
    public static MemorySegment handle(Tensor t, String name) {
        if (t == null) throw new NullPointerException(name);
        return access().handle(t);
    }

    /** The handle of an optional operand: NULL when t is null. */
    public static MemorySegment handleOrNull(Tensor t) {
        return t == null ? MemorySegment.NULL : access().handle(t);
    }

    /**
     * Takes {@code t} out of every scope for an owner that frees it itself (a module); the
     * Cleaner safety net still covers it.
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
        try {
            Status.check(f.call(handle(a, "self"), t.out0), op);
            return adopt(t, PerThread.address(t.out0));
        } finally {
            Reference.reachabilityFence(a);
        }
    }

    public static Tensor call(String op, Tensor a, Tensor b, Fn2 f) {
        PerThread t = PerThread.get();
        try {
            Status.check(f.call(handle(a, "self"), handle(b, "other"), t.out0), op);
            return adopt(t, PerThread.address(t.out0));
        } finally {
            Reference.reachabilityFence(a);
            Reference.reachabilityFence(b);
        }
    }

    public static Tensor call(String op, Tensor a, Tensor b, Tensor c, Fn3 f) {
        PerThread t = PerThread.get();
        try {
            Status.check(f.call(handle(a, "input"), handle(b, "weight"), handleOrNull(c), t.out0), op);
            return adopt(t, PerThread.address(t.out0));
        } finally {
            Reference.reachabilityFence(a);
            Reference.reachabilityFence(b);
            Reference.reachabilityFence(c);
        }
    }

    public static void inPlace(String op, Tensor a, InPlace f) {
        try {
            Status.check(f.call(handle(a, "self")), op);
        } finally {
            Reference.reachabilityFence(a);
        }
    }

    public static void inPlace(String op, Tensor a, Tensor b, InPlace2 f) {
        try {
            Status.check(f.call(handle(a, "self"), handle(b, "other")), op);
        } finally {
            Reference.reachabilityFence(a);
            Reference.reachabilityFence(b);
        }
    }
}
