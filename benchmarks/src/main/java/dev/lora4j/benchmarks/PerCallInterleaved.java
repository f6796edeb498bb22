package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * (a) lora4j's add against C++'s, measured side by side in one process: blocks of
 * {@code try (Tensor c = a.add(b)) {}} (what {@code Lora4jWork.add} measures) alternate with
 * blocks of the same loop in C++ straight on LibTorch ({@code lora4j_bench_add_loop} in
 * {@code benchmarks/native/bench_loops.cpp}, one downcall per block, the same LibTorch and the
 * same thread settings), the order alternating each round.
 *
 * <p>Why: this machine flips between a fast and a slow mode (LibTorch's add takes 600 or 950 ns
 * in a standalone C++ process, for minutes at a time), which moves the ratio of a JMH run and a
 * C++ run measured minutes apart by more than the 10% the target is about. Neighbouring blocks of
 * 20,000 calls (about 15 ms) see the same machine.
 *
 * <p>What it showed besides: with the JVM's default heap, lora4j's blocks alternate between about
 * 700 and 1,050 ns for seconds at a time while C++'s stay at 600. The slow blocks are the kernel
 * zeroing pages the growing G1 heap touches for the first time (a page fault costs ~8 µs on this
 * virtual machine; {@code perf} puts the difference in page-fault handling and in the allocating
 * Java code), paid through lora4j's 96 bytes of Java objects per call (the tensor and its safety
 * net reference). A heap touched once at start ({@code -Xms512m -Xmx512m -XX:+AlwaysPreTouch},
 * what {@code run-all.sh} gives the JVM peers) or a fixed young generation removes them.
 *
 * <p>Prints the medians and, for {@code benchmarks/run-all.sh}'s report, one line
 * {@code RESULT api_over_cpp THREADS r1 r2 ...}: the per-round ratios of lora4j's time per add to
 * C++'s.
 *
 * <p>usage: {@code java --enable-native-access=ALL-UNNAMED -Dlora4j.benchLoops=build/native/liblora4j_bench_loops.so
 * -cp benchmarks.jar dev.lora4j.benchmarks.PerCallInterleaved [rounds] [calls-per-block] [threads]}
 */
public final class PerCallInterleaved {

    private PerCallInterleaved() {}

    /** {@code n} of lora4j's adds; the nanoseconds per add. A method of its own, compiled as such (not on-stack replaced). */
    private static double apiAdd(Tensor a, Tensor b, int n) {
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
            try (Tensor c = a.add(b)) {
                // freed at once
            }
        }
        return (double) (System.nanoTime() - t0) / n;
    }

    public static void main(String[] args) throws Throwable {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 64;
        int per = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        if (rounds < 1 || per < 1) throw new IllegalArgumentException("rounds and calls per block must be >= 1");
        Path lib = Path.of(System.getProperty("lora4j.benchLoops", "build/native/liblora4j_bench_loops.so"));
        if (!Files.isRegularFile(lib)) {
            throw new IllegalArgumentException(lib + " not found: build it (cmake --build build) or set -Dlora4j.benchLoops");
        }
        Lora4jWork.threads(threads); // loads LibTorch through lora4j first: the library below shares it
        MethodHandle cppLoop = Linker.nativeLinker().downcallHandle(
                SymbolLookup.libraryLookup(lib, Arena.global()).findOrThrow("lora4j_bench_add_loop"),
                FunctionDescriptor.of(ValueLayout.JAVA_DOUBLE, ValueLayout.JAVA_LONG));
        try (Tensor a = Tensor.ones(1); Tensor b = Tensor.ones(1)) {
            double[][] ns = new double[2][rounds]; // per add: [0] C++, [1] lora4j
            for (int r = -4; r < rounds; r++) { // rounds -4..-1: warm-up (JIT), not counted
                for (int k = 0; k < 2; k++) {
                    int w = (k + Math.max(r, 0)) % 2;
                    double v;
                    if (w == 0) {
                        v = (double) cppLoop.invokeExact((long) per);
                        if (v < 0) throw new IllegalStateException("the C++ loop failed");
                    } else {
                        v = apiAdd(a, b, per);
                    }
                    if (r >= 0) ns[w][r] = v;
                }
            }
            double[] q = new double[rounds];
            for (int r = 0; r < rounds; r++) q[r] = ns[1][r] / ns[0][r];
            System.out.printf(Locale.ROOT, "%d intra-op thread(s), %d rounds of %d adds per side%n", threads, rounds, per);
            RoundRatios.printSides(new String[] {"C++", "lora4j"}, ns, "ns/add");
            RoundRatios.print("lora4j / C++", "api_over_cpp", threads, q);
        }
    }
}
