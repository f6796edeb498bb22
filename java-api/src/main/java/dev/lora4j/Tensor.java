package dev.lora4j;

import static dev.lora4j.bindings.LibLora4j.*;

import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.Calls;
import dev.lora4j.internal.Critical;
import dev.lora4j.internal.NativeLibrary;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Reference;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A LibTorch tensor: the one handle type of lora4j. Method names follow PyTorch's
 * ({@code add}, {@code matmul}, {@code add_} for the in-place form, {@code requiresGrad_}).
 *
 * <h2>Ownership</h2>
 * Every {@code Tensor} owns exactly one native tensor handle (several handles may share
 * storage, as views do in PyTorch). {@link #close()} frees the handle at once; using a
 * closed tensor throws {@link IllegalStateException}. A tensor created while a
 * {@link TensorScope} is open on the current thread belongs to that scope and is freed when
 * it closes, unless {@link #keep() kept}. A tensor created outside any scope belongs to the
 * caller; if it becomes unreachable unclosed, a safety net (a daemon thread watching phantom
 * references, as {@link java.lang.ref.Cleaner} does, but cheaper per tensor) frees it and counts it
 * ({@link Torch#reclaimedTensorCount()}): that counter should stay zero in correct code.
 * The native bytes of such tensors count against a budget
 * ({@link Torch#unownedTensorBytes()}); exceeding it makes lora4j collect unreachable tensors,
 * as {@code java.nio} does for direct buffers (see {@link Torch#unownedTensorBytes()} for the
 * settings, including a strict mode that throws instead).
 *
 * <h2>Lifetime during calls</h2>
 * Every native call pins the tensors it reads for its whole duration (an in-use count): a
 * {@link #close()}, a scope exit or the safety net that comes while a call on another thread
 * still uses the tensor marks it closed at once (later uses throw) and the memory is freed when
 * the last running call returns. Views from {@link #data()} are invalidated before the memory
 * goes, whichever way the tensor dies.
 *
 * <h2>Thread-safety</h2>
 * Reading a tensor (any non-in-place operation) from many threads at once is safe, as it is
 * in LibTorch. In-place operations, {@code requiresGrad_} and {@code backward} must not race
 * with other uses of the same tensor. Closing may race with uses on other threads: those
 * either complete on intact memory or throw {@link IllegalStateException}.
 */
public final class Tensor implements AutoCloseable {

    static {
        NativeLibrary.ensureLoaded();
        Calls.install(new Calls.Access() {
            @Override
            public MemorySegment pin(Tensor t) {
                return t.pin();
            }

            @Override
            public void unpin(Tensor t) {
                t.ref.release();
            }

            @Override
            public Tensor adopt(PerThread thread, long address) {
                return Tensor.adopt(thread, address);
            }

            @Override
            public void own(Tensor t) {
                t.pin();
                try {
                    if (t.scope != null) {
                        t.scope = null;
                        SafetyNet.register(PerThread.get(), t.ref, false);
                    } else {
                        t.ref.uncount();
                    }
                } finally {
                    t.ref.release();
                }
            }
        });
    }

    private final SafetyNet.Ref ref;
    private TensorScope.Frame scope;
    private long[] shape;
    private DType dtype;
    /** The arena of the views {@link #data()} handed out, or null; closed before the memory goes. */
    private volatile Arena viewArena;

    private Tensor(long address) {
        this.ref = new SafetyNet.Ref(this, address);
    }

    static Tensor adopt(PerThread thread, long address) {
        Tensor t = new Tensor(address);
        Object o = thread.scope;
        if (o != null) {
            TensorScope.Frame s = (TensorScope.Frame) o;
            if (s.abandoned) s = TensorScope.popAbandoned(thread);
            if (s != null) {
                t.scope = s;
                s.adopt(t);
                return t;
            }
        }
        t.toSafetyNet(thread);
        return t;
    }

    /** Hands this tensor to the safety net, counted as owned by nobody; closes it if that throws (strict mode). */
    private void toSafetyNet(PerThread thread) {
        try {
            SafetyNet.register(thread, ref, true);
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    static long reclaimedCount() {
        return SafetyNet.reclaimedCount();
    }

    /** Pins the native tensor for a call (see {@link SafetyNet.Ref#acquire()}); pair with {@code ref.release()}. */
    private MemorySegment pin() {
        return MemorySegment.ofAddress(ref.acquire());
    }

    private void unpin() {
        ref.release();
    }

    // ------------------------------------------------------------------ lifetime

    /**
     * Frees the native tensor now, or, when a call on another thread is still using it, as soon
     * as that call returns; either way this tensor is closed from now on. Idempotent. Views
     * from {@link #data()} become invalid first: if one is in use at this moment (by a
     * native call it was passed to), this throws {@link IllegalStateException} and the tensor
     * stays open, so that closing it can be tried again (a close that overlaps the very
     * {@code data()} call that made the view waits for that native call instead).
     */
    @Override
    public void close() {
        if (viewArena == null && ref.claimIdle()) {
            // Read again after the claim: a data() that ran whole between the first read and the
            // claim has published its arena (before its unpin, which the claim saw), and its
            // views must die before the memory. No new view can appear now: every pin throws.
            Arena views = viewArena;
            if (views != null) closeViewsWhenIdle(views);
            ref.freeClaimed();
            ref.closed();
            return;
        }
        if (!ref.beginClose()) return;
        Arena views = viewArena;
        if (views != null) {
            try {
                closeViews(views);
            } catch (IllegalStateException e) {
                ref.abortClose();
                throw new IllegalStateException("cannot close a tensor while a view of its data() is in use", e);
            }
        }
        ref.release();
        ref.closed();
    }

    /**
     * Closes the views of a tensor already claimed for freeing, waiting while a native call on
     * another thread still uses one (only after a close raced a {@link #data()} call: the tensor
     * cannot be reopened then, so the close waits instead of throwing).
     */
    private static void closeViewsWhenIdle(Arena views) {
        boolean interrupted = Thread.interrupted(); // parkNanos would not park while the flag is set
        try {
            for (int spins = 0; ; spins++) {
                try {
                    closeViews(views);
                    return;
                } catch (IllegalStateException inUse) {
                    if (spins < 100) {
                        Thread.onSpinWait();
                    } else {
                        java.util.concurrent.locks.LockSupport.parkNanos(100_000);
                        interrupted |= Thread.interrupted();
                    }
                }
            }
        } finally {
            if (interrupted) Thread.currentThread().interrupt();
        }
    }

    private static void closeViews(Arena views) {
        if (!views.scope().isAlive()) return;
        try {
            views.close();
        } catch (IllegalStateException e) {
            if (views.scope().isAlive()) throw e; // else closed concurrently by data(): fine
        }
    }

    /** Whether {@link #close()} has run. */
    public boolean isClosed() {
        return ref.isClosed();
    }

    /**
     * Lets this tensor outlive the scope that owns it, as a value returned from a block: it
     * moves to the enclosing scope, or, when there is none, to the caller, who then owns it.
     * No-op for a tensor that no scope owns.
     *
     * @return this tensor
     */
    public Tensor keep() {
        pin();
        try {
            TensorScope.Frame s = scope;
            if (s != null) {
                TensorScope.Frame parent = s.parent;
                while (parent != null && parent.isClosed()) parent = parent.parent;
                scope = parent;
                if (parent != null) {
                    parent.adopt(this);
                } else {
                    SafetyNet.register(PerThread.get(), ref, true);
                }
            }
        } finally {
            unpin();
        }
        return this;
    }

    /** Called by the scope closing: closes this tensor if that scope still owns it. */
    void releaseFromScope(TensorScope.Frame owner) {
        if (scope == owner) {
            scope = null;
            try {
                close();
            } catch (RuntimeException e) {
                SafetyNet.register(PerThread.get(), ref, true); // never lost: the safety net frees it
                throw e;
            }
        }
    }

    /** Called for a scope left open and unreachable: the safety net owns this tensor from now on. */
    void abandonedBy(TensorScope.Frame owner, PerThread thread) {
        if (scope == owner) {
            scope = null;
            if (!isClosed()) SafetyNet.register(thread, ref, true);
        }
    }

    // ------------------------------------------------------------------ creation

    /** An uninitialized float32 tensor. */
    public static Tensor empty(long... shape) {
        return empty(DType.FLOAT32, shape);
    }

    public static Tensor empty(DType dtype, long... shape) {
        return create("empty", dtype, shape, LibLora4j::lt_empty);
    }

    /** A float32 tensor of zeros. */
    public static Tensor zeros(long... shape) {
        return zeros(DType.FLOAT32, shape);
    }

    public static Tensor zeros(DType dtype, long... shape) {
        return create("zeros", dtype, shape, LibLora4j::lt_zeros);
    }

    /** A float32 tensor of ones. */
    public static Tensor ones(long... shape) {
        return ones(DType.FLOAT32, shape);
    }

    public static Tensor ones(DType dtype, long... shape) {
        return create("ones", dtype, shape, LibLora4j::lt_ones);
    }

    /** A float32 tensor filled with {@code value}. */
    public static Tensor full(double value, long... shape) {
        return full(DType.FLOAT32, value, shape);
    }

    public static Tensor full(DType dtype, double value, long... shape) {
        return create("full", dtype, shape, (s, n, d, o) -> lt_full(s, n, value, d, o));
    }

    /** Uniform samples from [0, 1), float32. Reproducible with {@link Torch#manualSeed}. */
    public static Tensor rand(long... shape) {
        return rand(DType.FLOAT32, shape);
    }

    public static Tensor rand(DType dtype, long... shape) {
        return create("rand", dtype, shape, LibLora4j::lt_rand);
    }

    /** Standard normal samples, float32. Reproducible with {@link Torch#manualSeed}. */
    public static Tensor randn(long... shape) {
        return randn(DType.FLOAT32, shape);
    }

    public static Tensor randn(DType dtype, long... shape) {
        return create("randn", dtype, shape, LibLora4j::lt_randn);
    }

    /** {@code [start, end)} in steps of {@code step}, as {@code torch.arange}. */
    public static Tensor arange(double start, double end, double step, DType dtype) {
        Objects.requireNonNull(dtype, "dtype");
        if (step == 0) throw new IllegalArgumentException("step must not be zero");
        PerThread t = PerThread.get();
        Status.check(lt_arange(start, end, step, dtype.code(), t.out0), "arange");
        return adopt(t, PerThread.address(t.out0));
    }

    /** {@code 0, 1, ..., end-1} as int64, as {@code torch.arange(end)}. */
    public static Tensor arange(long end) {
        return arange(0, end, 1, DType.INT64);
    }

    /** A 0-dimensional tensor, as {@code torch.tensor(value)}. */
    public static Tensor scalar(double value, DType dtype) {
        Objects.requireNonNull(dtype, "dtype");
        PerThread t = PerThread.get();
        Status.check(lt_scalar_tensor(value, dtype.code(), t.out0), "scalar");
        return adopt(t, PerThread.address(t.out0));
    }

    /** A float32 tensor holding a copy of {@code data} with the given shape. */
    public static Tensor of(float[] data, long... shape) {
        return copyOf(MemorySegment.ofArray(Objects.requireNonNull(data, "data")), DType.FLOAT32, shape);
    }

    public static Tensor of(double[] data, long... shape) {
        return copyOf(MemorySegment.ofArray(Objects.requireNonNull(data, "data")), DType.FLOAT64, shape);
    }

    public static Tensor of(long[] data, long... shape) {
        return copyOf(MemorySegment.ofArray(Objects.requireNonNull(data, "data")), DType.INT64, shape);
    }

    public static Tensor of(int[] data, long... shape) {
        return copyOf(MemorySegment.ofArray(Objects.requireNonNull(data, "data")), DType.INT32, shape);
    }

    /** A uint8 tensor holding a copy of {@code data}. */
    public static Tensor of(byte[] data, long... shape) {
        return copyOf(MemorySegment.ofArray(Objects.requireNonNull(data, "data")), DType.UINT8, shape);
    }

    public static Tensor of(boolean[] data, long... shape) {
        Objects.requireNonNull(data, "data");
        byte[] bytes = new byte[data.length];
        for (int i = 0; i < data.length; i++) bytes[i] = (byte) (data[i] ? 1 : 0);
        return copyOf(MemorySegment.ofArray(bytes), DType.BOOL, shape);
    }

    /** A 1-dimensional float32 tensor of {@code values}. */
    public static Tensor of(float... values) {
        return of(values, values.length);
    }

    /**
     * A tensor holding a copy of {@code data}, read as elements of {@code dtype} in native byte
     * order. {@code data} may be a heap or a native segment; its size must match the shape.
     */
    public static Tensor copyOf(MemorySegment data, DType dtype, long... shape) {
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(dtype, "dtype");
        long bytes = Math.multiplyExact(numel(shape), dtype.byteSize());
        if (data.byteSize() != bytes) {
            throw new IllegalArgumentException("data has " + data.byteSize() + " bytes but shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + bytes);
        }
        if (data.isNative()) {
            PerThread t = PerThread.get();
            Status.check(lt_from_data(data, bytes, t.longs(0, shape), shape.length, dtype.code(), t.out0), "copyOf");
            return adopt(t, PerThread.address(t.out0));
        }
        Tensor result = empty(dtype, shape);
        if (bytes > 0) {
            try {
                MemorySegment.copy(data, 0, result.rawData(result.pin(), bytes), 0, bytes);
            } finally {
                result.unpin();
            }
        }
        return result;
    }

    @FunctionalInterface
    private interface Creator {
        int call(MemorySegment shape, long ndim, int dtype, MemorySegment out);
    }

    private static Tensor create(String op, DType dtype, long[] shape, Creator f) {
        Objects.requireNonNull(dtype, "dtype");
        numel(shape);
        PerThread t = PerThread.get();
        Status.check(f.call(t.longs(0, shape), shape.length, dtype.code(), t.out0), op);
        return adopt(t, PerThread.address(t.out0));
    }

    /** Checks a shape and returns its element count. */
    static long numel(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        long n = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has a negative size at dimension " + i);
            }
            try {
                n = Math.multiplyExact(n, shape[i]);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has too many elements");
            }
        }
        return n;
    }

    // ------------------------------------------------------------------ queries

    /** The sizes of the dimensions (a copy). */
    public long[] shape() {
        return cachedShape().clone();
    }

    private long[] cachedShape() {
        long[] s = shape;
        if (s == null) {
            MemorySegment h = pin();
            try {
                int n = (int) Critical.dim(h);
                MemorySegment buf = PerThread.get().longBuffer(0, n);
                Status.check(lt_tensor_sizes(h, buf, n), "shape");
                s = buf.asSlice(0, 8L * n).toArray(ValueLayout.JAVA_LONG);
            } finally {
                unpin();
            }
            shape = s;
        }
        return s;
    }

    /** Number of dimensions. */
    public int dim() {
        return cachedShape().length;
    }

    /** Size of dimension {@code d}; negative {@code d} counts from the end. */
    public long size(int d) {
        long[] s = cachedShape();
        return s[normalizeDim(d, s.length, "d")];
    }

    /** Number of elements. */
    public long numel() {
        return numel(cachedShape());
    }

    /** The strides, in elements. */
    public long[] stride() {
        int n = dim();
        MemorySegment buf = PerThread.get().longBuffer(0, n);
        MemorySegment h = pin();
        try {
            Status.check(lt_tensor_strides(h, buf, n), "stride");
        } finally {
            unpin();
        }
        return buf.asSlice(0, 8L * n).toArray(ValueLayout.JAVA_LONG);
    }

    public DType dtype() {
        DType d = dtype;
        if (d == null) {
            try {
                d = DType.ofCode(Critical.dtype(pin()));
            } finally {
                unpin();
            }
            dtype = d;
        }
        return d;
    }

    public Device device() {
        MemorySegment h = pin();
        try {
            return lt_tensor_device_type(h) == LT_DEVICE_CUDA() ? Device.cuda(lt_tensor_device_index(h)) : Device.CPU;
        } finally {
            unpin();
        }
    }

    public boolean isContiguous() {
        try {
            return Critical.isContiguous(pin());
        } finally {
            unpin();
        }
    }

    /**
     * The version counter of the data (PyTorch's {@code _version}): every in-place change
     * (optimizer steps, {@code copy_}, {@code add_}) increases it, so a cache built from this
     * tensor can tell that it is stale.
     */
    public long version() {
        try {
            return lt_tensor_version(pin());
        } finally {
            unpin();
        }
    }

    static int normalizeDim(int d, int rank, String name) {
        int r = Math.max(rank, 1);
        if (d < -r || d >= r) {
            throw new IndexOutOfBoundsException(name + " = " + d + " is out of range for a tensor of "
                    + rank + " dimension" + (rank == 1 ? "" : "s") + " (expected " + -r + ".." + (r - 1) + ")");
        }
        return d < 0 ? d + r : d;
    }

    // ------------------------------------------------------------------ data out

    /** The value of a one-element tensor. */
    public double item() {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_tensor_item_double(pin(), t.out0), "item");
        } finally {
            unpin();
        }
        return t.out0.get(ValueLayout.JAVA_DOUBLE, 0);
    }

    /** The value of a one-element tensor as a long (exact for integral tensors). */
    public long itemLong() {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_tensor_item_int64(pin(), t.out0), "item");
        } finally {
            unpin();
        }
        return t.out0.get(ValueLayout.JAVA_LONG, 0);
    }

    /** The elements in row-major order, converted to float32 if needed. */
    public float[] toFloatArray() {
        float[] a = new float[Math.toIntExact(numel())];
        copyOut(DType.FLOAT32, MemorySegment.ofArray(a));
        return a;
    }

    public double[] toDoubleArray() {
        double[] a = new double[Math.toIntExact(numel())];
        copyOut(DType.FLOAT64, MemorySegment.ofArray(a));
        return a;
    }

    public long[] toLongArray() {
        long[] a = new long[Math.toIntExact(numel())];
        copyOut(DType.INT64, MemorySegment.ofArray(a));
        return a;
    }

    public int[] toIntArray() {
        int[] a = new int[Math.toIntExact(numel())];
        copyOut(DType.INT32, MemorySegment.ofArray(a));
        return a;
    }

    /** The elements as bytes of uint8 (other dtypes are converted). */
    public byte[] toByteArray() {
        byte[] a = new byte[Math.toIntExact(numel())];
        copyOut(DType.UINT8, MemorySegment.ofArray(a));
        return a;
    }

    private void copyOut(DType as, MemorySegment dst) {
        if (dst.byteSize() == 0) {
            pin();
            unpin();
            return;
        }
        boolean direct = dtype() == as && isContiguous() && device().type() == Device.Type.CPU;
        if (direct) {
            MemorySegment h = pin();
            try {
                MemorySegment.copy(rawData(h, dst.byteSize()), 0, dst, 0, dst.byteSize());
            } finally {
                unpin();
            }
            return;
        }
        try (TensorScope s = TensorScope.open()) {
            to(Device.CPU).to(as).contiguous().copyOut(as, dst);
        }
    }

    /**
     * A read-only view of a contiguous CPU tensor's elements, without copying. The view is
     * valid until this tensor dies, however it dies ({@link #close()}, its scope's end); accessing
     * it afterwards throws {@link IllegalStateException}. A view keeps its tensor reachable, so
     * the safety net never frees a tensor under a view still in use. In-place operations on the
     * tensor show through it.
     */
    public MemorySegment data() {
        if (device().type() != Device.Type.CPU) throw new IllegalStateException("data() needs a CPU tensor, not " + device());
        if (!isContiguous()) throw new IllegalStateException("data() needs a contiguous tensor: call contiguous() first");
        long bytes = numel() * dtype().byteSize();
        MemorySegment h = pin();
        try {
            Arena views = viewArena;
            if (views == null || !views.scope().isAlive()) views = newViewArena();
            MemorySegment v = pointer(h).reinterpret(bytes, views, null).asReadOnly();
            if (ref.isClosed()) { // a close() began meanwhile and may have missed the new arena
                closeViews(views);
                throw new IllegalStateException("tensor is closed");
            }
            return v;
        } finally {
            unpin();
        }
    }

    private synchronized Arena newViewArena() {
        Arena views = viewArena;
        if (views == null || !views.scope().isAlive()) {
            views = Arena.ofShared();
            Tensor self = this;
            // The arena's close action refers to this tensor: while any view (which refers to the
            // arena) is reachable, so is this tensor, and the safety net cannot free its memory.
            MemorySegment.NULL.reinterpret(0, views, ignored -> Reference.reachabilityFence(self));
            viewArena = views;
        }
        return views;
    }

    private static MemorySegment pointer(MemorySegment h) {
        PerThread t = PerThread.get();
        Status.check(lt_tensor_data_ptr(h, t.out0), "data");
        return PerThread.pointer(t.out0);
    }

    /** Writable unscoped view for internal copies; the caller keeps the handle {@code h} pinned. */
    private static MemorySegment rawData(MemorySegment h, long bytes) {
        return pointer(h).reinterpret(bytes);
    }

    /** Whether every element is finite (no NaN or infinity). */
    public boolean allFinite() {
        return flag("allFinite", this, (a, unused, o) -> lt_tensor_all_finite(a, o));
    }

    /** Same shape and exactly equal elements, as {@code torch.equal}. */
    public boolean equal(Tensor other) {
        Objects.requireNonNull(other, "other");
        return flag("equal", other, LibLora4j::lt_tensor_equal);
    }

    /** Elementwise {@code |a - b| <= atol + rtol·|b|} everywhere, as {@code torch.allclose}. */
    public boolean allclose(Tensor other, double rtol, double atol) {
        Objects.requireNonNull(other, "other");
        return flag("allclose", other, (a, b, o) -> lt_tensor_allclose(a, b, rtol, atol, o));
    }

    private boolean flag(String op, Tensor other, Calls.Fn2 f) {
        PerThread t = PerThread.get();
        MemorySegment a = pin();
        try {
            MemorySegment b = other.pin();
            try {
                Status.check(f.call(a, b, t.out0), op);
            } finally {
                other.unpin();
            }
        } finally {
            unpin();
        }
        return t.out0.get(ValueLayout.JAVA_INT, 0) != 0;
    }

    // ------------------------------------------------------------------ conversions

    public Tensor to(DType target) {
        Objects.requireNonNull(target, "dtype");
        return Calls.call("to", this, (a, o) -> lt_to_dtype(a, target.code(), o));
    }

    /** A copy on {@code target} (or this data if it is there already). CUDA needs a CUDA LibTorch. */
    public Tensor to(Device target) {
        Objects.requireNonNull(target, "device");
        int type = target.type() == Device.Type.CUDA ? LT_DEVICE_CUDA() : LT_DEVICE_CPU();
        return Calls.call("to", this, (a, o) -> lt_to_device(a, type, target.index(), o));
    }

    public Tensor clone() {
        return Calls.call("clone", this, LibLora4j::lt_clone);
    }

    /** Shares data with this tensor but is cut from the autograd graph. */
    public Tensor detach() {
        return Calls.call("detach", this, LibLora4j::lt_detach);
    }

    public Tensor contiguous() {
        return Calls.call("contiguous", this, LibLora4j::lt_contiguous);
    }

    /** Another handle to the very same tensor (same data, same autograd identity). */
    public Tensor alias() {
        return Calls.call("alias", this, LibLora4j::lt_shallow_copy);
    }

    // ------------------------------------------------------------------ autograd

    public boolean requiresGrad() {
        try {
            return Critical.requiresGrad(pin());
        } finally {
            unpin();
        }
    }

    /** Sets whether autograd records operations on this leaf tensor; returns this. */
    public Tensor requiresGrad_(boolean requiresGrad) {
        if (requiresGrad && !dtype().isFloatingPoint()) {
            throw new IllegalArgumentException("only floating-point tensors can require gradients, not " + dtype());
        }
        Calls.inPlace("requiresGrad_", this, h -> lt_set_requires_grad(h, requiresGrad ? 1 : 0));
        return this;
    }

    public boolean isLeaf() {
        try {
            return lt_is_leaf(pin()) != 0;
        } finally {
            unpin();
        }
    }

    /** Backpropagates from this one-element tensor. */
    public void backward() {
        backward(null, false);
    }

    /** Backpropagates with {@code gradient} as d(output)/d(this); null for a one-element tensor. */
    public void backward(Tensor gradient, boolean retainGraph) {
        int retain = retainGraph ? 1 : 0;
        if (gradient == null) {
            Calls.inPlace("backward", this, h -> lt_backward(h, MemorySegment.NULL, retain));
        } else {
            Calls.inPlace("backward", this, gradient, (h, g) -> lt_backward(h, g, retain));
        }
    }

    /** The accumulated gradient as a new handle, or null when there is none. */
    public Tensor grad() {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_grad(pin(), t.out0), "grad");
        } finally {
            unpin();
        }
        long g = PerThread.address(t.out0);
        return g == 0 ? null : adopt(t, g);
    }

    /** Fills the gradient with zeros, if there is one. */
    public void zeroGrad() {
        Calls.inPlace("zeroGrad", this, LibLora4j::lt_zero_grad);
    }

    /** Drops the gradient ({@code t.grad = None}). */
    public void clearGrad() {
        Calls.inPlace("clearGrad", this, LibLora4j::lt_clear_grad);
    }

    // ------------------------------------------------------------------ arithmetic

    public Tensor add(Tensor other) {
        return Calls.call("add", this, other, (a, b, o) -> lt_add(a, b, 1.0, o));
    }

    /** {@code this + alpha·other}. */
    public Tensor add(Tensor other, double alpha) {
        return Calls.call("add", this, other, (a, b, o) -> lt_add(a, b, alpha, o));
    }

    public Tensor add(double value) {
        return Calls.call("add", this, (a, o) -> lt_add_scalar(a, value, o));
    }

    public Tensor sub(Tensor other) {
        return Calls.call("sub", this, other, (a, b, o) -> lt_sub(a, b, 1.0, o));
    }

    public Tensor sub(Tensor other, double alpha) {
        return Calls.call("sub", this, other, (a, b, o) -> lt_sub(a, b, alpha, o));
    }

    public Tensor sub(double value) {
        return Calls.call("sub", this, (a, o) -> lt_sub_scalar(a, value, o));
    }

    public Tensor mul(Tensor other) {
        return Calls.call("mul", this, other, LibLora4j::lt_mul);
    }

    public Tensor mul(double value) {
        return Calls.call("mul", this, (a, o) -> lt_mul_scalar(a, value, o));
    }

    /** True division (integer tensors give floating-point results), as {@code torch.div}. */
    public Tensor div(Tensor other) {
        return Calls.call("div", this, other, LibLora4j::lt_div);
    }

    public Tensor div(double value) {
        return Calls.call("div", this, (a, o) -> lt_div_scalar(a, value, o));
    }

    public Tensor pow(double exponent) {
        return Calls.call("pow", this, (a, o) -> lt_pow_scalar(a, exponent, o));
    }

    public Tensor pow(Tensor exponent) {
        Objects.requireNonNull(exponent, "exponent");
        return Calls.call("pow", this, exponent, LibLora4j::lt_pow);
    }

    public Tensor neg() {
        return unary("neg", LT_UNARY_NEG());
    }

    public Tensor exp() {
        return unary("exp", LT_UNARY_EXP());
    }

    public Tensor log() {
        return unary("log", LT_UNARY_LOG());
    }

    public Tensor sqrt() {
        return unary("sqrt", LT_UNARY_SQRT());
    }

    public Tensor abs() {
        return unary("abs", LT_UNARY_ABS());
    }

    public Tensor relu() {
        return unary("relu", LT_UNARY_RELU());
    }

    public Tensor sigmoid() {
        return unary("sigmoid", LT_UNARY_SIGMOID());
    }

    public Tensor tanh() {
        return unary("tanh", LT_UNARY_TANH());
    }

    /** GELU with the exact erf form ({@code approximate='none'}). */
    public Tensor gelu() {
        return unary("gelu", LT_UNARY_GELU());
    }

    /** GELU, {@code approximate} being {@code "none"} or {@code "tanh"}. */
    public Tensor gelu(String approximate) {
        return switch (Objects.requireNonNull(approximate, "approximate")) {
            case "none" -> gelu();
            case "tanh" -> unary("gelu", LT_UNARY_GELU_TANH());
            default -> throw new IllegalArgumentException("approximate must be 'none' or 'tanh', not '" + approximate + "'");
        };
    }

    private Tensor unary(String op, int code) {
        return Calls.call(op, this, (a, o) -> lt_unary(a, code, o));
    }

    // ------------------------------------------------------------------ in place

    /** {@code this += other}; returns this. */
    public Tensor add_(Tensor other) {
        return add_(other, 1.0);
    }

    /** {@code this += alpha·other}; returns this. */
    public Tensor add_(Tensor other, double alpha) {
        Calls.inPlace("add_", this, other, (a, b) -> lt_add_(a, b, alpha));
        return this;
    }

    public Tensor add_(double value) {
        Calls.inPlace("add_", this, a -> lt_add_scalar_(a, value));
        return this;
    }

    public Tensor mul_(Tensor other) {
        Calls.inPlace("mul_", this, other, LibLora4j::lt_mul_);
        return this;
    }

    public Tensor mul_(double value) {
        Calls.inPlace("mul_", this, a -> lt_mul_scalar_(a, value));
        return this;
    }

    /** Copies {@code src} (broadcast, converted) into this tensor; returns this. */
    public Tensor copy_(Tensor src) {
        Objects.requireNonNull(src, "src");
        Calls.inPlace("copy_", this, src, LibLora4j::lt_copy_);
        return this;
    }

    public Tensor zero_() {
        Calls.inPlace("zero_", this, LibLora4j::lt_zero_);
        return this;
    }

    public Tensor fill_(double value) {
        Calls.inPlace("fill_", this, a -> lt_fill_(a, value));
        return this;
    }

    // ------------------------------------------------------------------ reductions

    /** Sum of all elements (0-dimensional). */
    public Tensor sum() {
        return Calls.call("sum", this, LibLora4j::lt_sum);
    }

    public Tensor sum(int dim) {
        return sum(new int[] {dim}, false);
    }

    public Tensor sum(int[] dims, boolean keepdim) {
        long[] d = dimsArg(dims);
        return Calls.call("sum", this, (a, o) -> lt_sum_dims(a, PerThread.get().longs(1, d), d.length, keepdim ? 1 : 0, o));
    }

    /** Mean of all elements (0-dimensional). */
    public Tensor mean() {
        return Calls.call("mean", this, LibLora4j::lt_mean);
    }

    public Tensor mean(int dim) {
        return mean(new int[] {dim}, false);
    }

    public Tensor mean(int[] dims, boolean keepdim) {
        long[] d = dimsArg(dims);
        return Calls.call("mean", this, (a, o) -> lt_mean_dims(a, PerThread.get().longs(1, d), d.length, keepdim ? 1 : 0, o));
    }

    /** Maximum of all elements (0-dimensional). */
    public Tensor max() {
        return Calls.call("max", this, LibLora4j::lt_max);
    }

    /** Maximum values and their indices over {@code dim}, as {@code torch.max(t, dim)}. */
    public MaxResult max(int dim, boolean keepdim) {
        PerThread t = PerThread.get();
        try {
            Status.check(lt_max_dim(pin(), dim, keepdim ? 1 : 0, t.out0, t.out1), "max");
        } finally {
            unpin();
        }
        Tensor values = adopt(t, PerThread.address(t.out0));
        return new MaxResult(values, adopt(t, PerThread.address(t.out1)));
    }

    /** Values and indices of a maximum over a dimension; closing closes both. */
    public record MaxResult(Tensor values, Tensor indices) implements AutoCloseable {
        @Override
        public void close() {
            values.close();
            indices.close();
        }
    }

    public Tensor argmax(int dim) {
        return argmax(dim, false);
    }

    public Tensor argmax(int dim, boolean keepdim) {
        return Calls.call("argmax", this, (a, o) -> lt_argmax(a, dim, keepdim ? 1 : 0, o));
    }

    private static long[] dimsArg(int[] dims) {
        Objects.requireNonNull(dims, "dims");
        long[] d = new long[dims.length];
        for (int i = 0; i < dims.length; i++) d[i] = dims[i];
        return d;
    }

    // ------------------------------------------------------------------ linear algebra and shape

    /** Matrix product with PyTorch's broadcasting rules ({@code torch.matmul}). */
    public Tensor matmul(Tensor other) {
        Objects.requireNonNull(other, "other");
        if (dim() == 0 || other.dim() == 0) {
            throw new IllegalArgumentException("matmul needs tensors of at least 1 dimension, got "
                    + dim() + " and " + other.dim());
        }
        return Calls.call("matmul", this, other, LibLora4j::lt_matmul);
    }

    /** Product of two matrices. */
    public Tensor mm(Tensor other) {
        Objects.requireNonNull(other, "other");
        if (dim() != 2 || other.dim() != 2) {
            throw new IllegalArgumentException("mm needs two matrices, got shapes " + Arrays.toString(cachedShape())
                    + " and " + Arrays.toString(other.cachedShape()));
        }
        if (size(1) != other.size(0)) {
            throw new IllegalArgumentException("mm: shapes " + Arrays.toString(cachedShape()) + " and "
                    + Arrays.toString(other.cachedShape()) + " cannot be multiplied");
        }
        return Calls.call("mm", this, other, LibLora4j::lt_mm);
    }

    /** Transpose of a tensor of at most 2 dimensions. */
    public Tensor t() {
        if (dim() > 2) throw new IllegalArgumentException("t() needs at most 2 dimensions, got " + dim() + ": use transpose");
        return Calls.call("t", this, LibLora4j::lt_t);
    }

    public Tensor transpose(int dim0, int dim1) {
        return Calls.call("transpose", this, (a, o) -> lt_transpose(a, dim0, dim1, o));
    }

    public Tensor permute(int... dims) {
        long[] d = dimsArg(dims);
        return Calls.call("permute", this, (a, o) -> lt_permute(a, PerThread.get().longs(1, d), d.length, o));
    }

    /** Same data in a new shape (one size may be -1), copying only if needed. */
    public Tensor reshape(long... shape) {
        checkViewShape(shape);
        return Calls.call("reshape", this, (a, o) -> lt_reshape(a, PerThread.get().longs(1, shape), shape.length, o));
    }

    /** Same data in a new shape (one size may be -1); fails when a copy would be needed. */
    public Tensor view(long... shape) {
        checkViewShape(shape);
        return Calls.call("view", this, (a, o) -> lt_view(a, PerThread.get().longs(1, shape), shape.length, o));
    }

    private static void checkViewShape(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        for (long s : shape) {
            if (s < -1) throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has a negative size");
        }
    }

    /** {@code length} elements of {@code dim} from {@code start}, sharing data. */
    public Tensor narrow(int dim, long start, long length) {
        return Calls.call("narrow", this, (a, o) -> lt_narrow(a, dim, start, length, o));
    }

    /** Entries of {@code dim} at {@code index} (an int64 or int32 vector). */
    public Tensor indexSelect(int dim, Tensor index) {
        Objects.requireNonNull(index, "index");
        return Calls.call("indexSelect", this, index, (a, b, o) -> lt_index_select(a, dim, b, o));
    }

    public Tensor squeeze() {
        return Calls.call("squeeze", this, LibLora4j::lt_squeeze_all);
    }

    public Tensor squeeze(int dim) {
        return Calls.call("squeeze", this, (a, o) -> lt_squeeze(a, dim, o));
    }

    public Tensor unsqueeze(int dim) {
        return Calls.call("unsqueeze", this, (a, o) -> lt_unsqueeze(a, dim, o));
    }

    public Tensor softmax(int dim) {
        return Calls.call("softmax", this, (a, o) -> lt_softmax(a, dim, o));
    }

    public Tensor logSoftmax(int dim) {
        return Calls.call("logSoftmax", this, (a, o) -> lt_log_softmax(a, dim, o));
    }

    /** Concatenation along an existing dimension. */
    public static Tensor cat(List<Tensor> tensors, int dim) {
        return joined("cat", tensors, dim, true);
    }

    /** Stacking along a new dimension. */
    public static Tensor stack(List<Tensor> tensors, int dim) {
        return joined("stack", tensors, dim, false);
    }

    private static Tensor joined(String op, List<Tensor> tensors, int dim, boolean cat) {
        Objects.requireNonNull(tensors, "tensors");
        if (tensors.isEmpty()) throw new IllegalArgumentException(op + " needs at least one tensor");
        Tensor[] operands = tensors.toArray(Tensor[]::new);
        MemorySegment[] handles = Calls.pinAll(operands, "tensors");
        PerThread t = PerThread.get();
        try {
            MemorySegment list = t.pointers(handles);
            int n = handles.length;
            Status.check(cat ? lt_cat(list, n, dim, t.out0) : lt_stack(list, n, dim, t.out0), op);
        } finally {
            Calls.unpinAll(operands);
        }
        return adopt(t, PerThread.address(t.out0));
    }

    @Override
    public String toString() {
        if (isClosed()) return "Tensor(closed)";
        return "Tensor(shape=" + Arrays.toString(cachedShape()) + ", dtype=" + dtype() + ", device=" + device()
                + (requiresGrad() ? ", requiresGrad" : "") + ")";
    }
}
