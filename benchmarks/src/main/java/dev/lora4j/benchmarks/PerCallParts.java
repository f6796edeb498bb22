package dev.lora4j.benchmarks;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import dev.lora4j.bindings.LibLora4j;
import dev.lora4j.internal.Critical;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * The per-call cost split into the public API and the raw downcalls under it, measured in one JVM
 * with the loops alternating round by round, so the machine's drift (which moves LibTorch's own
 * add by tens of percent between runs a minute apart) hits every loop alike and the differences
 * stay readable:
 *
 * <ul>
 *   <li>{@code api add}: {@code try (Tensor c = a.add(b)) {}}, what {@code Lora4jWork.add} measures;
 *   <li>{@code raw add}: {@code lt_add} and the critical free through the generated bindings, on
 *       raw handles (no Java tensor, no pins, no safety net, no budget);
 *   <li>{@code api alias} and {@code raw alias}: the same for {@code lt_shallow_copy}, whose native
 *       work is trivial, so their difference is the API's cost of one tensor's life.
 * </ul>
 *
 * <p>One intra-op thread. Prints the median, minimum and maximum over the measured rounds, and the
 * two differences.
 *
 * <p>usage: {@code java --enable-native-access=ALL-UNNAMED -cp benchmarks.jar dev.lora4j.benchmarks.PerCallParts [rounds]}
 */
public final class PerCallParts {

    private PerCallParts() {}

    private static final int WARM_ROUNDS = 4;
    private static final MemorySegment OUT =
            MemorySegment.ofAddress(Arena.global().allocate(ValueLayout.ADDRESS).address()).reinterpret(8);

    private static Tensor a;
    private static Tensor b;
    private static MemorySegment rawA;
    private static MemorySegment rawB;

    private interface Loop {
        void run(int n);
    }

    private static void apiAdd(int n) {
        for (int i = 0; i < n; i++) {
            try (Tensor c = a.add(b)) {
                // freed at once
            }
        }
    }

    private static void rawAdd(int n) {
        for (int i = 0; i < n; i++) {
            LibLora4j.lt_add(rawA, rawB, 1.0, OUT);
            Critical.free(OUT.get(ValueLayout.JAVA_LONG, 0));
        }
    }

    private static void apiAlias(int n) {
        for (int i = 0; i < n; i++) {
            try (Tensor c = a.alias()) {
                // freed at once
            }
        }
    }

    private static void rawAlias(int n) {
        for (int i = 0; i < n; i++) {
            LibLora4j.lt_shallow_copy(rawA, OUT);
            Critical.free(OUT.get(ValueLayout.JAVA_LONG, 0));
        }
    }

    private static MemorySegment rawOnes() {
        MemorySegment shape = Arena.ofAuto().allocateFrom(ValueLayout.JAVA_LONG, 1);
        if (LibLora4j.lt_ones(shape, 1, 0, OUT) != 0) throw new IllegalStateException("lt_ones failed");
        return OUT.get(ValueLayout.ADDRESS, 0);
    }

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 14;
        if (rounds <= WARM_ROUNDS) throw new IllegalArgumentException("rounds must exceed " + WARM_ROUNDS);
        Torch.setNumThreads(1);
        a = Tensor.ones(1);
        b = Tensor.ones(1);
        rawA = rawOnes();
        rawB = rawOnes();
        String[] names = {"api add", "raw add", "api alias", "raw alias"};
        Loop[] loops = {PerCallParts::apiAdd, PerCallParts::rawAdd, PerCallParts::apiAlias, PerCallParts::rawAlias};
        int[] calls = {1_000_000, 1_000_000, 10_000_000, 10_000_000};
        List<List<Double>> ns = new ArrayList<>();
        for (int k = 0; k < loops.length; k++) ns.add(new ArrayList<>());
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < loops.length; k++) {
                long t0 = System.nanoTime();
                loops[k].run(calls[k]);
                double v = (System.nanoTime() - t0) / (double) calls[k];
                if (r >= WARM_ROUNDS) ns.get(k).add(v);
            }
        }
        double[] median = new double[loops.length];
        for (int k = 0; k < loops.length; k++) {
            List<Double> l = ns.get(k);
            Collections.sort(l);
            median[k] = l.get(l.size() / 2);
            System.out.printf(Locale.ROOT, "%-10s median %7.1f ns, min %7.1f, max %7.1f%n",
                    names[k], median[k], l.get(0), l.get(l.size() - 1));
        }
        System.out.printf(Locale.ROOT, "API over raw: add %.1f ns, a tensor's life (alias) %.1f ns%n",
                median[0] - median[1], median[2] - median[3]);
        a.close();
        b.close();
        LibLora4j.lt_tensor_free(rawA);
        LibLora4j.lt_tensor_free(rawB);
    }
}
