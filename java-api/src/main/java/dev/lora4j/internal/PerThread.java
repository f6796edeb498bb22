package dev.lora4j.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Per-thread native scratch memory for out-pointers and small argument arrays, so that a
 * call into the shim allocates nothing. Also holds the thread's innermost tensor scope.
 *
 * <p>Grad mode belongs to the Java thread: LibTorch keeps it per OS thread, and a virtual thread
 * may run on another carrier after every blocking call, so on a virtual thread {@link #get()}
 * first sets the carrier's grad mode to this thread's (off inside a no-grad scope, else on);
 * every path into the shim that records or depends on autograd passes through it. A downcall
 * cannot unmount its virtual thread, so the mode holds for the call.
 *
 * <p>Confined to its thread by construction ({@link #get()}); never share an instance.
 * The memory is freed when the thread and its state become unreachable.
 */
public final class PerThread {

    private static final ThreadLocal<PerThread> CURRENT = ThreadLocal.withInitial(PerThread::new);
    private static final int ARRAY_BYTES = 8 * 64;

    /** First out-pointer slot (8 bytes). */
    public final MemorySegment out0;
    /** Second out-pointer slot (8 bytes). */
    public final MemorySegment out1;
    private final MemorySegment arrays;
    /** The innermost open tensor scope (frame) of this thread, or null; owned by dev.lora4j. */
    public Object scope;
    /** The innermost open no-grad scope of this thread, or null; owned by dev.lora4j. */
    public Object gradScope;
    /** This thread's safety-net registry of unscoped tensors, or null; owned by dev.lora4j. */
    public Object tensorRegistry;

    /** Owns the memory below; kept reachable (and so allocated) as long as this object is. */
    private final MemorySegment memory;
    /** Whether the owner is a virtual thread (see the class comment). */
    private final boolean virtual = Thread.currentThread().isVirtual();
    /** Where setting a carrier's grad mode writes the previous one (4 bytes, never read). */
    private final MemorySegment gradScratch;

    private PerThread() {
        memory = Arena.ofAuto().allocate(24 + 3L * ARRAY_BYTES, 8);
        // Views in the global scope: a downcall that receives a segment of an automatic (shared)
        // arena acquires and releases that arena around the call (two atomic updates, ~20 ns on
        // every shim call); a global-scope view of the same memory costs nothing. The memory
        // stays valid because this object, which holds `memory`, lives as long as its thread.
        MemorySegment all = MemorySegment.ofAddress(memory.address()).reinterpret(memory.byteSize());
        out0 = all.asSlice(0, 8);
        out1 = all.asSlice(8, 8);
        gradScratch = all.asSlice(16, 8);
        arrays = all.asSlice(24);
    }

    /** For a call that needs no scratch memory: on a virtual thread, its grad mode applied to the carrier; nothing on a platform thread. */
    public static void applyGradMode() {
        if (Thread.currentThread().isVirtual()) get();
    }

    /** The calling thread's state; on a virtual thread, its grad mode applied to the carrier first. */
    public static PerThread get() {
        PerThread t = CURRENT.get();
        if (t.virtual) Critical.setGradEnabled(t.gradScope == null, t.gradScratch);
        return t;
    }

    /** Native room for {@code count} longs: slot {@code slot} (0..2), or fresh memory if larger. */
    public MemorySegment longBuffer(int slot, int count) {
        return count <= 64
                ? arrays.asSlice((long) slot * ARRAY_BYTES, ARRAY_BYTES)
                : Arena.ofAuto().allocate(ValueLayout.JAVA_LONG, count);
    }

    /** Copies {@code values} into native slot {@code slot} (0..2) and returns it. */
    public MemorySegment longs(int slot, long[] values) {
        MemorySegment s = longBuffer(slot, values.length);
        MemorySegment.copy(values, 0, s, ValueLayout.JAVA_LONG, 0, values.length);
        return s;
    }

    /** Writes {@code handles} as a native pointer array and returns it. */
    public MemorySegment pointers(MemorySegment[] handles) {
        MemorySegment s = handles.length <= 64
                ? arrays.asSlice(0, ARRAY_BYTES)
                : Arena.ofAuto().allocate(ValueLayout.ADDRESS, handles.length);
        for (int i = 0; i < handles.length; i++) {
            s.setAtIndex(ValueLayout.ADDRESS, i, handles[i]);
        }
        return s;
    }

    /** Reads the address written into an out slot. */
    public static long address(MemorySegment slot) {
        return slot.get(ValueLayout.JAVA_LONG, 0);
    }

    /** Reads the pointer written into an out slot. */
    public static MemorySegment pointer(MemorySegment slot) {
        return slot.get(ValueLayout.ADDRESS, 0);
    }
}
