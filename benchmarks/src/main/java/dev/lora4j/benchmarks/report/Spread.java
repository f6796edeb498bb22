package dev.lora4j.benchmarks.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The spread of the comparison across full runs of {@code benchmarks/run-all.sh}: every ratio of
 * the main table ({@link Report}) in every run, its range, and whether each target holds in every
 * run (the worst run decides); then every peer's time at 2 threads over its time at 1 thread, per
 * run (below 1: the second thread helps).
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.report.Spread DIR-1 DIR-2 [...] OUT.md}
 */
public final class Spread {

    private Spread() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 3) {
            System.err.println("usage: Spread DIR-1 DIR-2 [...] OUT.md");
            System.exit(2);
        }
        List<Report> runs = new ArrayList<>();
        List<Map<String, String>> metas = new ArrayList<>();
        for (int i = 0; i < args.length - 1; i++) {
            runs.add(Report.load(Path.of(args[i])));
            metas.add(Report.meta(Path.of(args[i])));
        }
        String md = markdown(runs, metas);
        Files.writeString(Path.of(args[args.length - 1]), md);
        System.out.print(md);
    }

    static String markdown(List<Report> runs, List<Map<String, String>> metas) {
        StringBuilder sb = new StringBuilder("# The comparison's spread across " + runs.size() + " full runs\n\n");
        for (int i = 0; i < runs.size(); i++) {
            Map<String, String> m = metas.get(i);
            sb.append("- run ").append(i + 1).append(": ").append(m.getOrDefault("date", "?")).append(", `")
                    .append(m.getOrDefault("command", "?")).append("`, JMH ").append(m.getOrDefault("jmh", "?"))
                    .append(", load before ").append(m.getOrDefault("load_before", "?")).append(", after ")
                    .append(m.getOrDefault("load_after", "?")).append('\n');
        }
        sb.append("\nRatios of medians, one per run, then [min–max]. A target holds when it holds in every run.\n\n");
        sb.append("| work | threads | lora4j/DJL | lora4j/Python | lora4j/C++ | targets: each run → the worst |\n|---|---:|---|---|---|---|\n");
        Report first = runs.get(0);
        for (int t : first.threads) {
            for (Report.Work w : Report.WORKS) {
                if (runs.stream().noneMatch(r -> r.hasAny(w.key()))) continue;
                sb.append("| ").append(w.label()).append(" | ").append(t);
                for (String peer : new String[] {"DJL", "Python", "C++"}) {
                    sb.append(" | ").append(spread(runs.stream().map(r -> r.ratio("lora4j", peer, w.key(), t)).toList()));
                }
                List<String> checks = new ArrayList<>();
                for (Report.Target g : Report.targets(w.key())) {
                    List<Double> v = runs.stream().map(r -> r.value(g, w.key(), t)).toList();
                    Double worst = v.contains(null) ? null : v.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
                    checks.add(runs.get(runs.size() - 1).label(g, w.key(), t) + ": " + String.join(", ", v.stream().map(Report::fmt).toList()) + " → "
                            + Report.check(worst, g.limit()));
                }
                sb.append(" | ").append(String.join("; ", checks)).append(" |\n");
            }
        }
        if (first.threads.contains(1) && first.threads.contains(2)) {
            sb.append("\nTime at 2 threads over time at 1 thread, per peer (one per run; below 1: the second thread helps):\n\n");
            sb.append("| work |");
            for (String p : Report.PEERS) sb.append(' ').append(p).append(" |");
            sb.append("\n|---|").append("---|".repeat(Report.PEERS.length)).append('\n');
            for (Report.Work w : Report.WORKS) {
                if (runs.stream().noneMatch(r -> r.hasAny(w.key()))) continue;
                sb.append("| ").append(w.label());
                for (String p : Report.PEERS) {
                    sb.append(" | ").append(spread(runs.stream().map(r -> {
                        double[] two = r.get(p, w.key(), 2), one = r.get(p, w.key(), 1);
                        return two == null || one == null ? null : Report.median(two) / Report.median(one);
                    }).toList()));
                }
                sb.append(" |\n");
            }
        }
        return sb.toString();
    }

    /** "a, b [min–max]" of one ratio across runs. */
    static String spread(List<Double> v) {
        if (v.stream().allMatch(x -> x == null)) return "n/a";
        List<String> each = v.stream().map(Report::fmt).toList();
        double[] ok = v.stream().filter(x -> x != null).mapToDouble(Double::doubleValue).toArray();
        double lo = Arrays.stream(ok).min().orElseThrow(), hi = Arrays.stream(ok).max().orElseThrow();
        return String.join(", ", each) + String.format(Locale.ROOT, " [%.2f–%.2f]", lo, hi);
    }
}
