package dev.lora4j.benchmarks.report;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import org.apache.commons.math3.distribution.TDistribution;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;

/**
 * Turns one run of {@code benchmarks/run-all.sh} into {@code latest.md} (the table) and
 * {@code latest.png} (the chart). Inputs, all in one folder: {@code jmh-T.json} (JMH's JSON for
 * lora4j and DJL at T threads), {@code cpp-T.txt} and {@code python-T.txt} (the
 * {@code RESULT work threads ns...} lines of bench_native and bench.py), {@code meta.txt}
 * ({@code key=value} lines: date, cpu, jdk, libtorch, allocator, command, ...), and, optional,
 * lora4j's interleaved measurements at T threads, which decide their target when present:
 * {@code percall-T.txt} ({@code PerCallInterleaved}'s per-round ratios of lora4j's add to C++'s,
 * in one process), {@code loop-T.txt} ({@code TrainLoopInterleaved}'s per-round ratios of (g) to
 * (d)) and {@code infer-T.txt} ({@code InferInterleaved}'s per-round ratios of merged to base
 * inference).
 *
 * <p>Every cell is computed the same way from the per-iteration samples (all forks for JMH):
 * the median, and ± the 99.9% confidence half-width of the mean (Student's t, as JMH's "Error").
 * Ratios are ratios of medians.
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.report.Report DIR OUT.md OUT.png}
 */
public final class Report {

    /** The work, its label, the JMH method name, and the target it carries. */
    record Work(String key, String label, String method) {}

    static final List<Work> WORKS = List.of(
            new Work("add", "(a) add, 1-element, result freed", "add"),
            new Work("linear", "(b) linear 10×784 → 1000", "linear"),
            new Work("lora_step", "(c) LoRA-linear step, r=4, SGD", "loraStep"),
            new Work("mlp_step", "(d) MLP 784-1000-2000-10 step, Adam", "mlpStep"),
            new Work("mlp_lora_step", "(e) MLP LoRA step, r=1, frozen base, Adam", "mlpLoraStep"),
            new Work("infer_base", "(f) MLP inference, base", "inferBase"),
            new Work("infer_merged", "(f) MLP inference, merged adapters", "inferMerged"),
            new Work("train_loop", "(g) demo's pre-training loop, per step: Fashion-MNIST (IDX, 10k), shuffled batch 10, (d)'s step, loss read back",
                    "trainLoop"));

    /** Steps in one epoch of (g): 10,000 images in batches of 10. */
    static final int LOOP_STEPS_PER_EPOCH = 1000;

    static final String[] PEERS = {"lora4j", "DJL", "C++", "Python"};

    /** Samples (ns/op per iteration) by peer, work key and thread count. */
    final Map<String, Map<String, Map<Integer, double[]>>> samples = new LinkedHashMap<>();
    final TreeSet<Integer> threads = new TreeSet<>();
    /**
     * The works whose target lora4j's interleaved measurement decides: the work, the work it is
     * compared with, and the name of the {@code RESULT} line that carries the per-round ratios.
     */
    record Interleaved(String work, String reference, String result) {}

    static final List<Interleaved> INTERLEAVED = List.of(
            new Interleaved("add", "C++", "api_over_cpp"), // PerCallInterleaved: against a peer, in one process
            new Interleaved("train_loop", "mlp_step", "loop_over_step"), // TrainLoopInterleaved
            new Interleaved("infer_merged", "infer_base", "merged_over_base")); // InferInterleaved

    /** lora4j's interleaved per-round ratios, by {@code RESULT} name and thread count. */
    final Map<String, Map<Integer, double[]>> interleavedRatios = new LinkedHashMap<>();

    Report() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: Report DIR OUT.md OUT.png");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        Report r = load(dir);
        Map<String, String> meta = meta(dir);
        String md = r.markdown(meta);
        Files.writeString(Path.of(args[1]), md);
        r.chart(Path.of(args[2]), meta);
        System.out.print(md);
    }

    /** The {@code key=value} lines of a run's {@code meta.txt}. */
    static Map<String, String> meta(Path dir) throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        for (String line : Files.readAllLines(dir.resolve("meta.txt"))) {
            int eq = line.indexOf('=');
            if (eq > 0) meta.put(line.substring(0, eq), line.substring(eq + 1));
        }
        return meta;
    }

    /** Every peer's samples in one run's folder. */
    static Report load(Path dir) throws IOException {
        Report r = new Report();
        try (var files = Files.list(dir)) {
            for (Path p : files.sorted().toList()) {
                String name = p.getFileName().toString();
                if (name.startsWith("jmh-") && name.endsWith(".json")) r.readJmh(p);
                else if (name.startsWith("cpp-") && name.endsWith(".txt")) r.readResults(p, "C++");
                else if (name.startsWith("python-") && name.endsWith(".txt")) r.readResults(p, "Python");
                else if ((name.startsWith("loop-") || name.startsWith("infer-") || name.startsWith("percall-"))
                        && name.endsWith(".txt")) r.readInterleaved(p);
            }
        }
        return r;
    }

    void put(String peer, String work, int t, double[] values) {
        threads.add(t);
        samples.computeIfAbsent(peer, k -> new LinkedHashMap<>()).computeIfAbsent(work, k -> new LinkedHashMap<>()).put(t, values);
    }

    void readJmh(Path p) throws IOException {
        JsonArray runs = JsonParser.parseString(Files.readString(p)).getAsJsonArray();
        for (JsonElement e : runs) {
            JsonObject run = e.getAsJsonObject();
            String bench = run.get("benchmark").getAsString();
            String cls = bench.substring(0, bench.lastIndexOf('.'));
            String method = bench.substring(bench.lastIndexOf('.') + 1);
            String peer = cls.endsWith("Lora4jWork") || cls.endsWith("Lora4jLoop") ? "lora4j"
                    : cls.endsWith("DjlWork") || cls.endsWith("DjlLoop") ? "DJL" : null;
            if (peer == null) continue;
            int t = run.getAsJsonObject("params").get("threads").getAsInt();
            List<Double> values = new ArrayList<>();
            for (JsonElement fork : run.getAsJsonObject("primaryMetric").getAsJsonArray("rawData")) {
                for (JsonElement v : fork.getAsJsonArray()) values.add(v.getAsDouble());
            }
            String key = WORKS.stream().filter(w -> w.method().equals(method)).map(Work::key).findFirst().orElse(method);
            put(peer, key, t, values.stream().mapToDouble(Double::doubleValue).toArray());
        }
    }

    void readResults(Path p, String peer) throws IOException {
        for (String line : Files.readAllLines(p)) {
            if (!line.startsWith("RESULT ")) continue;
            String[] f = line.trim().split("\\s+");
            double[] v = new double[f.length - 3];
            for (int i = 3; i < f.length; i++) v[i - 3] = Double.parseDouble(f[i]);
            put(peer, f[1], Integer.parseInt(f[2]), v);
        }
    }

    /** The {@code RESULT <name> T r1 r2 ...} lines of the interleaved tools ({@link #INTERLEAVED}). */
    void readInterleaved(Path p) throws IOException {
        for (String line : Files.readAllLines(p)) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 4 || !f[0].equals("RESULT") || INTERLEAVED.stream().noneMatch(i -> i.result().equals(f[1]))) continue;
            double[] v = new double[f.length - 3];
            for (int i = 3; i < f.length; i++) v[i - 3] = Double.parseDouble(f[i]);
            interleavedRatios.computeIfAbsent(f[1], k -> new LinkedHashMap<>()).put(Integer.parseInt(f[2]), v);
        }
    }

    /** lora4j's interleaved per-round ratios of {@code work} to {@code reference} at t threads, or null. */
    double[] interleavedRounds(String work, String reference, int t) {
        return INTERLEAVED.stream()
                .filter(i -> i.work().equals(work) && i.reference().equals(reference))
                .map(i -> interleavedRatios.getOrDefault(i.result(), Map.of()).get(t))
                .filter(Objects::nonNull)
                .findFirst().orElse(null);
    }

    /** "median [min–max]" of lora4j's interleaved rounds of {@code work} against {@code reference} at t threads, or n/a. */
    String interleaved(String work, String reference, int t) {
        double[] v = interleavedRounds(work, reference, t);
        if (v == null) return "n/a";
        return String.format(Locale.ROOT, "%.2f [%.2f–%.2f]", median(v), Arrays.stream(v).min().orElseThrow(),
                Arrays.stream(v).max().orElseThrow());
    }

    boolean hasAny(String work) {
        return samples.values().stream().anyMatch(m -> m.containsKey(work));
    }

    double[] get(String peer, String work, int t) {
        return samples.getOrDefault(peer, Map.of()).getOrDefault(work, Map.of()).get(t);
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /** 99.9% confidence half-width of the mean (NaN for fewer than two samples). */
    static double error(double[] v) {
        int n = v.length;
        if (n < 2) return Double.NaN;
        double mean = Arrays.stream(v).average().orElse(0);
        double ss = 0;
        for (double x : v) ss += (x - mean) * (x - mean);
        double sd = Math.sqrt(ss / (n - 1));
        return new TDistribution(n - 1).inverseCumulativeProbability(1 - 0.001 / 2) * sd / Math.sqrt(n);
    }

    /** A time with a unit that keeps 3-4 significant digits. */
    static String time(double ns) {
        if (ns < 10_000) return String.format(Locale.ROOT, "%.0f ns", ns);
        if (ns < 10_000_000) return String.format(Locale.ROOT, "%.1f µs", ns / 1e3);
        return String.format(Locale.ROOT, "%.2f ms", ns / 1e6);
    }

    String cell(String peer, String work, int t) {
        double[] v = get(peer, work, t);
        if (v == null) return "n/a";
        double m = median(v);
        double e = error(v);
        return time(m) + (Double.isNaN(e) ? "" : " ± " + String.format(Locale.ROOT, "%.1f%%", 100 * e / m));
    }

    Double ratio(String a, String b, String work, int t) {
        double[] x = get(a, work, t);
        double[] y = get(b, work, t);
        if (x == null || y == null) return null;
        return median(x) / median(y);
    }

    Double ratio(String peer, String workA, String workB, int t, boolean samePeer) {
        double[] x = get(peer, workA, t);
        double[] y = get(peer, workB, t);
        if (x == null || y == null) return null;
        return median(x) / median(y);
    }

    static String fmt(Double r) {
        return r == null ? "n/a" : String.format(Locale.ROOT, "%.2f", r);
    }

    static String check(Double r, double limit) {
        if (r == null) return "n/a";
        return String.format(Locale.ROOT, "%.2f %s", r, r <= limit ? "✅" : "❌");
    }

    /**
     * A target of the table: lora4j's time over another peer's on the same work ({@code peer}), or
     * over lora4j's own time on another work ({@code work}), at most {@code limit}.
     */
    record Target(String text, String peer, String work, double limit) {}

    static List<Target> targets(String work) {
        return switch (work) {
            case "add" -> List.of(new Target("≤ 1.10× C++", "C++", null, 1.10));
            case "lora_step", "mlp_step", "mlp_lora_step" ->
                    List.of(new Target("≤ 0.85× Python", "Python", null, 0.85), new Target("≤ 0.80× DJL", "DJL", null, 0.80));
            case "infer_merged" -> List.of(new Target("merged ≤ 1.02× base", null, "infer_base", 1.02));
            case "train_loop" -> List.of(new Target("demo step ≤ 1.1× (d)", null, "mlp_step", 1.10));
            // both decided by the interleaved measurement when the run has it (see value)
            default -> List.of();
        };
    }

    /**
     * The ratio a target limits, in this run. For (g) against (d) and merged against base
     * inference, the median of lora4j's interleaved rounds when the run measured them: JMH runs the
     * two works minutes apart, and the machine's drift between them is larger than the difference
     * the target is about.
     */
    Double value(Target g, String work, int t) {
        double[] rounds = interleavedRounds(work, reference(g), t);
        if (rounds != null) return median(rounds);
        return g.peer() != null ? ratio("lora4j", g.peer(), work, t) : ratio("lora4j", work, g.work(), t, true);
    }

    /** What a target compares with: lora4j's other work, or the peer. */
    static String reference(Target g) {
        return g.work() != null ? g.work() : g.peer();
    }

    /** The target's text, naming the interleaved measurement when it decides. */
    String label(Target g, String work, int t) {
        boolean interleaved = interleavedRounds(work, reference(g), t) != null;
        return g.text() + (interleaved ? " (interleaved)" : "");
    }

    String target(String work, int t) {
        return String.join("; ", targets(work).stream().map(g -> label(g, work, t) + ": " + check(value(g, work, t), g.limit())).toList());
    }

    String markdown(Map<String, String> meta) {
        StringBuilder sb = new StringBuilder();
        sb.append("# lora4j against DJL, C++ and Python\n\n");
        sb.append("Run of ").append(meta.getOrDefault("date", "?")).append(" on ").append(meta.getOrDefault("cpu", "?"))
                .append(" (").append(meta.getOrDefault("cores", "?")).append(" cores), ").append(meta.getOrDefault("os", "?"))
                .append(".\n\n");
        sb.append("- LibTorch ").append(meta.getOrDefault("libtorch", "?")).append(" (Debian), the same build under every peer;")
                .append(" JDK ").append(meta.getOrDefault("jdk", "?")).append("; DJL ").append(meta.getOrDefault("djl", "?"))
                .append("; Python ").append(meta.getOrDefault("python", "?")).append(" with torch ")
                .append(meta.getOrDefault("torch", "?")).append(".\n");
        sb.append("- Threads: LibTorch intra-op = the `threads` column, for every peer; OpenMP's wait: ")
                .append(meta.getOrDefault("ompwait", "libgomp's default OMP_WAIT_POLICY")).append(";")
                .append(" OPENBLAS_NUM_THREADS = `threads` for DJL, C++ and Python (lora4j's shim pins OpenBLAS to one")
                .append(" thread and splits large products itself).")
                .append(" Allocator (every peer, via the environment): ")
                .append(meta.getOrDefault("allocator", "?")).append(".\n");
        sb.append("- lora4j and DJL: JMH ").append(meta.getOrDefault("jmh", "?")).append("; C++ and Python: ")
                .append(meta.getOrDefault("native", "?")).append(".\n");
        sb.append("- Cells: median of the iterations ± the 99.9% confidence half-width of the mean, in % of the median")
                .append(" (computed the same way for every column). Ratios: of medians, all from this one run.\n");
        sb.append("- Command: `").append(meta.getOrDefault("command", "benchmarks/run-all.sh")).append("`\n\n");
        sb.append("| work | threads | lora4j | DJL 0.22.0 | C++ (LibTorch) | Python (torch) | lora4j/DJL | lora4j/Python | lora4j/C++ | target |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (int t : threads) {
            for (Work w : WORKS) {
                if (!hasAny(w.key())) continue; // not selected in this run (run-all.sh --works)
                sb.append("| ").append(w.label()).append(" | ").append(t);
                for (String p : PEERS) sb.append(" | ").append(cell(p, w.key(), t));
                sb.append(" | ").append(fmt(ratio("lora4j", "DJL", w.key(), t)));
                sb.append(" | ").append(fmt(ratio("lora4j", "Python", w.key(), t)));
                sb.append(" | ").append(fmt(ratio("lora4j", "C++", w.key(), t)));
                sb.append(" | ").append(target(w.key(), t)).append(" |\n");
            }
        }
        if (hasAny("add") && threads.stream().anyMatch(t -> interleavedRounds("add", "C++", t) != null)) {
            sb.append("\n(a) lora4j's add over C++'s: from the medians above (JMH forks against a C++ process, run")
                    .append(" minutes apart), and interleaved in blocks of 20,000 calls in one process (`PerCallInterleaved`:")
                    .append(" the same LibTorch, the per-round median [range]), which the target uses:\n\n");
            sb.append("| threads | medians above | interleaved |\n|---:|---:|---|\n");
            for (int t : threads) {
                sb.append("| ").append(t).append(" | ").append(fmt(ratio("lora4j", "C++", "add", t)));
                sb.append(" | ").append(interleaved("add", "C++", t)).append(" |\n");
            }
        }
        if (hasAny("infer_merged")) {
            sb.append("\nMerged-adapter inference relative to the base model's, per peer (ratio of the medians above); for")
                    .append(" lora4j also the two interleaved in blocks of forwards in one JVM (`InferInterleaved`: the")
                    .append(" per-round median [range]), which the target uses:\n\n");
            sb.append("| threads | lora4j | DJL | C++ | Python | lora4j interleaved |\n|---:|---:|---:|---:|---:|---|\n");
            for (int t : threads) {
                sb.append("| ").append(t);
                for (String p : PEERS) sb.append(" | ").append(fmt(ratio(p, "infer_merged", "infer_base", t, true)));
                sb.append(" | ").append(interleaved("infer_merged", "infer_base", t)).append(" |\n");
            }
        }
        if (hasAny("train_loop")) {
            sb.append("\n(g) per epoch (").append(LOOP_STEPS_PER_EPOCH).append(" steps = the median step × ").append(LOOP_STEPS_PER_EPOCH)
                    .append("), and the loop's step relative to the same peer's (d) step (what the real loop adds), from the")
                    .append(" medians above; for lora4j also (d) and (g) interleaved in blocks of steps in one JVM")
                    .append(" (`TrainLoopInterleaved`: the per-round median [range]), which the target uses:\n\n");
            sb.append("| threads | lora4j | DJL | C++ | Python | lora4j (g)/(d) | DJL (g)/(d) | C++ (g)/(d) | Python (g)/(d) | lora4j (g)/(d) interleaved |\n");
            sb.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
            for (int t : threads) {
                sb.append("| ").append(t);
                for (String p : PEERS) {
                    double[] v = get(p, "train_loop", t);
                    sb.append(" | ").append(v == null ? "n/a" : String.format(Locale.ROOT, "%.2f s", median(v) * LOOP_STEPS_PER_EPOCH / 1e9));
                }
                for (String p : PEERS) sb.append(" | ").append(fmt(ratio(p, "train_loop", "mlp_step", t, true)));
                sb.append(" | ").append(interleaved("train_loop", "mlp_step", t)).append(" |\n");
            }
        }
        // Extra lora4j rows (variants that are not part of the comparison proper).
        Map<String, Map<Integer, double[]>> mine = samples.getOrDefault("lora4j", Map.of());
        List<String> extra = mine.keySet().stream().filter(k -> WORKS.stream().noneMatch(w -> w.key().equals(k))).toList();
        if (!extra.isEmpty()) {
            sb.append("\nlora4j variants measured in the same run:\n\n| variant | threads | lora4j | ratio to DJL | ratio to Python | ratio to C++ |\n|---|---:|---:|---:|---:|---:|\n");
            for (String k : extra) {
                String base = baseWork(k);
                for (int t : threads) {
                    if (get("lora4j", k, t) == null) continue;
                    double m = median(get("lora4j", k, t));
                    sb.append("| ").append(k).append(" | ").append(t).append(" | ").append(cell("lora4j", k, t));
                    for (String p : new String[] {"DJL", "Python", "C++"}) {
                        double[] o = base == null ? null : get(p, base, t);
                        sb.append(" | ").append(o == null ? "n/a" : fmt(m / median(o)));
                    }
                    sb.append(" |\n");
                }
            }
        }
        return sb.toString();
    }

    /** The comparison work a lora4j variant stands beside (its JMH name with a suffix). */
    static String baseWork(String variant) {
        for (Work w : WORKS) if (variant.startsWith(w.method())) return w.key();
        return null;
    }

    void chart(Path out, Map<String, String> meta) throws IOException {
        CategoryChart c = new CategoryChartBuilder().width(1200).height(620)
                .title("Time relative to C++ on LibTorch (lower is better), " + meta.getOrDefault("date", ""))
                .xAxisTitle("work (threads)").yAxisTitle("time / C++ time").build();
        c.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        c.getStyler().setXAxisLabelRotation(30);
        c.getStyler().setSeriesColors(new Color[] {new Color(0x1f77b4), new Color(0xd62728), new Color(0x7f7f7f), new Color(0xff7f0e)});
        List<Work> measured = WORKS.stream().filter(w -> hasAny(w.key())).toList();
        List<String> cats = new ArrayList<>();
        for (int t : threads) for (Work w : measured) cats.add(w.label().substring(0, 3) + " " + w.key() + " (" + t + ")");
        for (String p : PEERS) {
            List<Double> ys = new ArrayList<>();
            for (int t : threads) {
                for (Work w : measured) {
                    Double r = ratio(p, "C++", w.key(), t);
                    ys.add(r == null ? 0.0 : r);
                }
            }
            c.addSeries(p, cats, ys);
        }
        BitmapEncoder.saveBitmap(c, out.toString(), BitmapEncoder.BitmapFormat.PNG);
    }
}
