package dev.lora4j.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Keeps the JVM's handlers for the signals it relies on across loading LibTorch.
 *
 * <p>HotSpot uses SIGSEGV (and SIGBUS, SIGFPE, SIGILL) for ordinary work: implicit null checks in
 * compiled code, safepoint polls, stack banging. Some LibTorch builds (Debian's 2.6, through the
 * glog it links) install their own "fatal signal" handler while their libraries initialise; that
 * handler prints a trace and re-raises the signal with {@code kill}, which turns the JVM's first
 * implicit null check into a crash ({@code SIGSEGV (sent by kill)} in plain Java frames). The JDK's
 * {@code libjsig.so} chains such handlers, but only when preloaded by the user.
 *
 * <p>So {@link NativeLibrary} takes a {@link #snapshot()} of the actions for these signals before it
 * loads LibTorch and the shim, and {@link Snapshot#restore()} afterwards puts back every action that
 * changed, naming the library whose handler it removed ({@link #report()}). The actions are copied as
 * opaque bytes through libc's {@code sigaction}, so no layout of {@code struct sigaction} is assumed
 * beyond its first field (the handler) and an upper bound on its size.
 *
 * <p>Thread-safe: called from {@link NativeLibrary}'s class initializer; the report is immutable.
 */
public final class SignalHandlers {

    /** Linux signal numbers (the same on x86_64 and aarch64). */
    static final int SIGILL = 4, SIGBUS = 7, SIGFPE = 8, SIGSEGV = 11;
    private static final int[] SIGNALS = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    private static final String[] NAMES = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"};
    /** An upper bound on sizeof(struct sigaction): 152 bytes with glibc on 64-bit Linux. */
    private static final long SIGACTION_BYTES = 512;
    /** Dl_info: four pointers (dli_fname, dli_fbase, dli_sname, dli_saddr). */
    private static final long DL_INFO_BYTES = 32;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle SIGACTION = LINKER.defaultLookup().find("sigaction")
            .map(a -> LINKER.downcallHandle(a, FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS)))
            .orElse(null);
    private static final MethodHandle DLADDR = LINKER.defaultLookup().find("dladdr")
            .map(a -> LINKER.downcallHandle(a, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)))
            .orElse(null);

    private static volatile List<String> report = List.of();

    private SignalHandlers() {}

    /** What the last {@link Snapshot#restore()} put back, one line per signal; empty when nothing changed. */
    public static List<String> report() {
        return report;
    }

    /** The shared object whose code handles {@code signal} now (e.g. {@code libjvm.so}), if known. */
    public static Optional<String> handlerLibrary(int signal) {
        if (SIGACTION == null) return Optional.empty();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment action = arena.allocate(SIGACTION_BYTES, 8);
            if ((int) SIGACTION.invokeExact(signal, MemorySegment.NULL, action) != 0) return Optional.empty();
            return libraryOf(action.get(JAVA_LONG, 0));
        } catch (Throwable t) {
            return Optional.empty();
        }
    }

    /** Takes the current actions of SIGSEGV, SIGBUS, SIGFPE and SIGILL. */
    static Snapshot snapshot() {
        byte[][] actions = new byte[SIGNALS.length][];
        if (SIGACTION != null) {
            try (Arena arena = Arena.ofConfined()) {
                for (int i = 0; i < SIGNALS.length; i++) {
                    MemorySegment action = arena.allocate(SIGACTION_BYTES, 8);
                    if ((int) SIGACTION.invokeExact(SIGNALS[i], MemorySegment.NULL, action) == 0) {
                        actions[i] = action.toArray(JAVA_BYTE);
                    }
                }
            } catch (Throwable t) {
                throw new IllegalStateException("sigaction failed", t);
            }
        }
        return new Snapshot(actions);
    }

    /** The signal actions at one moment; {@link #restore()} puts back those that changed since. */
    static final class Snapshot {
        private final byte[][] actions;

        private Snapshot(byte[][] actions) {
            this.actions = actions;
        }

        void restore() {
            if (SIGACTION == null) return;
            List<String> lines = new ArrayList<>();
            try (Arena arena = Arena.ofConfined()) {
                for (int i = 0; i < SIGNALS.length; i++) {
                    if (actions[i] == null) continue;
                    MemorySegment now = arena.allocate(SIGACTION_BYTES, 8);
                    if ((int) SIGACTION.invokeExact(SIGNALS[i], MemorySegment.NULL, now) != 0) continue;
                    long was = MemorySegment.ofArray(actions[i]).get(JAVA_LONG.withByteAlignment(1), 0);
                    long is = now.get(JAVA_LONG, 0);
                    if (was == is) continue;
                    MemorySegment saved = arena.allocate(SIGACTION_BYTES, 8);
                    MemorySegment.copy(MemorySegment.ofArray(actions[i]), 0, saved, 0, SIGACTION_BYTES);
                    if ((int) SIGACTION.invokeExact(SIGNALS[i], saved, MemorySegment.NULL) != 0) {
                        throw new IllegalStateException("cannot restore the JVM's " + NAMES[i] + " handler");
                    }
                    lines.add(NAMES[i] + ": removed the handler of " + libraryOf(is).orElse("an unknown library")
                            + ", restored the one of " + libraryOf(was).orElse("an unknown library"));
                }
            } catch (RuntimeException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException("sigaction failed", t);
            }
            if (!lines.isEmpty()) report = List.copyOf(lines);
        }
    }

    private static Optional<String> libraryOf(long address) {
        if (address == 0) return Optional.of("SIG_DFL");
        if (address == 1) return Optional.of("SIG_IGN");
        if (DLADDR == null) return Optional.empty();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment info = arena.allocate(DL_INFO_BYTES, 8);
            if ((int) DLADDR.invokeExact(MemorySegment.ofAddress(address), info) == 0) return Optional.empty();
            MemorySegment name = info.get(ADDRESS, 0);
            if (name.equals(MemorySegment.NULL)) return Optional.empty();
            return Optional.of(name.reinterpret(4096).getString(0));
        } catch (Throwable t) {
            return Optional.empty();
        }
    }
}
