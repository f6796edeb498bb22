package dev.lora4j.internal;

import dev.lora4j.bindings.LibLora4j;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Critical downcalls (no Java thread-state transition) for shim functions that run in a few
 * nanoseconds and never block: freeing a handle and the trivial getters. They are built
 * from the generated bindings' addresses and descriptors, so the bindings stay untouched.
 *
 * <p>Only functions that neither call back into Java nor run for long belong here: a critical
 * call holds off safepoints until it returns. Internal; stateless and thread-safe.
 */
public final class Critical {

    static {
        NativeLibrary.ensureLoaded();
    }

    private static final MethodHandle FREE = critical(LibLora4j.lt_tensor_free$address(), LibLora4j.lt_tensor_free$descriptor());
    private static final MethodHandle DIM = critical(LibLora4j.lt_tensor_dim$address(), LibLora4j.lt_tensor_dim$descriptor());
    private static final MethodHandle NUMEL = critical(LibLora4j.lt_tensor_numel$address(), LibLora4j.lt_tensor_numel$descriptor());
    private static final MethodHandle NBYTES = critical(LibLora4j.lt_tensor_nbytes$address(), LibLora4j.lt_tensor_nbytes$descriptor());
    private static final MethodHandle DTYPE = critical(LibLora4j.lt_tensor_dtype$address(), LibLora4j.lt_tensor_dtype$descriptor());
    private static final MethodHandle REQUIRES_GRAD =
            critical(LibLora4j.lt_requires_grad$address(), LibLora4j.lt_requires_grad$descriptor());
    private static final MethodHandle IS_CONTIGUOUS =
            critical(LibLora4j.lt_tensor_is_contiguous$address(), LibLora4j.lt_tensor_is_contiguous$descriptor());

    private static final MethodHandle SET_GRAD_ENABLED =
            critical(LibLora4j.lt_grad_set_enabled$address(), LibLora4j.lt_grad_set_enabled$descriptor());

    private Critical() {}

    /** lt_grad_set_enabled: sets the calling OS thread's grad mode; the previous one goes to {@code previous} (4 bytes). */
    public static void setGradEnabled(boolean enabled, MemorySegment previous) {
        try {
            int unused = (int) SET_GRAD_ENABLED.invokeExact(enabled ? 1 : 0, previous);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static MethodHandle critical(MemorySegment address, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(address, descriptor, Linker.Option.critical(false));
    }

    /** lt_tensor_free: drops one reference (the tensor's memory is freed with the last one). */
    public static void free(long address) {
        try {
            int unused = (int) FREE.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static long dim(MemorySegment handle) {
        try {
            return (long) DIM.invokeExact(handle);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static long numel(MemorySegment handle) {
        try {
            return (long) NUMEL.invokeExact(handle);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The bytes of the tensor's own elements (numel times the element size). */
    public static long nbytes(MemorySegment handle) {
        try {
            return (long) NBYTES.invokeExact(handle);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static int dtype(MemorySegment handle) {
        try {
            return (int) DTYPE.invokeExact(handle);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static boolean requiresGrad(MemorySegment handle) {
        try {
            return (int) REQUIRES_GRAD.invokeExact(handle) != 0;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static boolean isContiguous(MemorySegment handle) {
        try {
            return (int) IS_CONTIGUOUS.invokeExact(handle) != 0;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
