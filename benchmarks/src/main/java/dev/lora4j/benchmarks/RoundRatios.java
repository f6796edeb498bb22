package dev.lora4j.benchmarks;

import java.util.Arrays;
import java.util.Locale;
import java.util.StringJoiner;

/**
 * What an interleaved measurement prints: each side's median block, and the per-round ratios as
 * their median and range and as the line {@code RESULT <result> <threads> r1 r2 ...} that
 * {@code run-all.sh}'s report reads.
 */
final class RoundRatios {

    private RoundRatios() {}

    /** Each side's median, minimum and maximum over the blocks, in {@code unit} (per block: {@code perBlock[side][round]}). */
    static void printSides(String[] names, double[][] perBlock, String unit) {
        for (int w = 0; w < names.length; w++) {
            double[] c = perBlock[w].clone();
            Arrays.sort(c);
            int n = c.length;
            System.out.printf(Locale.ROOT, "%-7s %.1f %s (median of %d blocks; min %.1f, max %.1f)%n", names[w], c[n / 2], unit, n,
                    c[0], c[n - 1]);
        }
    }

    static void print(String label, String result, int threads, double[] ratios) {
        double[] sorted = ratios.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        System.out.printf(Locale.ROOT, "%s per round: median %.3f, range %.3f .. %.3f%n", label, sorted[n / 2], sorted[0],
                sorted[n - 1]);
        StringJoiner line = new StringJoiner(" ", "RESULT " + result + " " + threads + " ", "");
        for (double v : ratios) line.add(String.format(Locale.ROOT, "%.4f", v));
        System.out.println(line);
    }
}
