package dev.lora4j.benchmarks.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The rows of {@code benchmarks/results/allocator.md}: work (d) under glibc's defaults, lora4j's
 * tuned glibc and jemalloc, for every peer, from the folders {@code allocator-glibc},
 * {@code allocator-tuned} and {@code allocator-jemalloc} that {@code run-all.sh --allocator-study}
 * fills. usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.report.AllocatorStudy RESULTS_DIR}
 */
public final class AllocatorStudy {

    private AllocatorStudy() {}

    public static void main(String[] args) throws IOException {
        Path results = Path.of(args[0]);
        String[][] settings = {
            {"glibc", "glibc defaults"},
            {"tuned", "glibc tuned (lora4j's default: mmap_threshold 32 MiB, trim_threshold 256 MiB, top_pad 64 MiB)"},
            {"jemalloc", "jemalloc (LD_PRELOAD, defaults)"}};
        Report[] reports = new Report[settings.length];
        for (int i = 0; i < settings.length; i++) {
            reports[i] = new Report();
            Path dir = results.resolve("allocator-" + settings[i][0]);
            try (var files = Files.list(dir)) {
                for (Path p : files.sorted().toList()) {
                    String name = p.getFileName().toString();
                    if (name.startsWith("jmh-") && name.endsWith(".json")) reports[i].readJmh(p);
                    else if (name.startsWith("cpp-")) reports[i].readResults(p, "C++");
                    else if (name.startsWith("python-")) reports[i].readResults(p, "Python");
                }
            }
        }
        for (int i = 0; i < settings.length; i++) {
            StringBuilder row = new StringBuilder("| " + settings[i][1]);
            for (String peer : Report.PEERS) {
                double[] v = reports[i].get(peer, "mlp_step", 1);
                double[] base = reports[0].get(peer, "mlp_step", 1);
                if (v == null) {
                    row.append(" | n/a");
                    continue;
                }
                double m = Report.median(v);
                row.append(" | ").append(Report.time(m));
                if (base != null) row.append(String.format(Locale.ROOT, " (%.2f)", m / Report.median(base)));
            }
            System.out.println(row.append(" |"));
        }
    }
}
