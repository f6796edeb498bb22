package dev.lora4j.benchmarks;

import java.util.Arrays;
import java.util.Locale;
import java.util.StringJoiner;

/**
 * The per-round ratios of an interleaved measurement, printed as their median and range and as
 * the line {@code RESULT <result> <threads> r1 r2 ...} that {@code run-all.sh}'s report reads.
 */
final class RoundRatios {

    private RoundRatios() {}

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
