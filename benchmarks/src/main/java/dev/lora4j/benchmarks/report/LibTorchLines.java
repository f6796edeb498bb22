package dev.lora4j.benchmarks.report;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The LibTorch 1.13 vs 2.6 table: lora4j, C++ and Python on Debian 12's LibTorch 1.13 (a
 * {@code benchmarks/run-all.sh} run) beside the same works on Debian 13's LibTorch 2.6 (a
 * {@code benchmarks/run-all.sh --libtorch 2.6} run in the trixie tree). Cells are medians, as in
 * {@link Report}; the ratio columns compare each line with itself (lora4j/Python on the same
 * LibTorch) and the two lines with each other (2.6/1.13 per peer).
 *
 * <p>usage: {@code java -cp benchmarks.jar dev.lora4j.benchmarks.report.LibTorchLines DIR-1.13 DIR-2.6 OUT.md}
 */
public final class LibTorchLines {

    private LibTorchLines() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: LibTorchLines DIR-1.13 DIR-2.6 OUT.md");
            System.exit(2);
        }
        Path oldDir = Path.of(args[0]), newDir = Path.of(args[1]);
        String md = markdown(Report.load(oldDir), Report.meta(oldDir), Report.load(newDir), Report.meta(newDir));
        Files.writeString(Path.of(args[2]), md);
        System.out.print(md);
    }

    static String markdown(Report old, Map<String, String> oldMeta, Report now, Map<String, String> nowMeta) {
        StringBuilder sb = new StringBuilder("# lora4j on LibTorch 1.13 and 2.6\n\n");
        sb.append("- LibTorch 1.13: ").append(oldMeta.getOrDefault("libtorch", "?")).append(" (")
                .append(oldMeta.getOrDefault("os", "?")).append("), run of ").append(oldMeta.getOrDefault("date", "?"))
                .append(", `").append(oldMeta.getOrDefault("command", "?")).append("`; Python torch ")
                .append(oldMeta.getOrDefault("torch", "?")).append(".\n");
        sb.append("- LibTorch 2.6: ").append(nowMeta.getOrDefault("libtorch", "?"))
                .append(" (Debian 13 tree on the same machine), run of ").append(nowMeta.getOrDefault("date", "?"))
                .append(", `").append(nowMeta.getOrDefault("command", "?")).append("`; Python torch ")
                .append(nowMeta.getOrDefault("torch", "?")).append("; JDK ").append(nowMeta.getOrDefault("jdk", "?")).append(".\n");
        sb.append("- OpenBLAS environment: 1.13 `").append(oldMeta.getOrDefault("openblas_env", "?").trim()).append("`, 2.6 `")
                .append(nowMeta.getOrDefault("openblas_env", "?").trim()).append("` (an OPENBLAS_CORETYPE pin changes every product's speed).\n");
        sb.append("- Same works, thread and allocator settings as the main table; medians. DJL 0.22 has no LibTorch 2.6 build.\n\n");
        sb.append("| work | threads | lora4j 1.13 | lora4j 2.6 | Python 1.13 | Python 2.6 | C++ 1.13 | C++ 2.6 ")
                .append("| lora4j/Python 1.13 | lora4j/Python 2.6 | lora4j 2.6/1.13 | Python 2.6/1.13 |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int t : now.threads) {
            for (Report.Work w : Report.WORKS) {
                if (now.get("lora4j", w.key(), t) == null && old.get("lora4j", w.key(), t) == null) continue;
                sb.append("| ").append(w.label()).append(" | ").append(t);
                for (String peer : new String[] {"lora4j", "Python", "C++"}) {
                    sb.append(" | ").append(median(old, peer, w.key(), t)).append(" | ").append(median(now, peer, w.key(), t));
                }
                sb.append(" | ").append(Report.fmt(old.ratio("lora4j", "Python", w.key(), t)));
                sb.append(" | ").append(Report.fmt(now.ratio("lora4j", "Python", w.key(), t)));
                sb.append(" | ").append(Report.fmt(across(now, old, "lora4j", w.key(), t)));
                sb.append(" | ").append(Report.fmt(across(now, old, "Python", w.key(), t))).append(" |\n");
            }
        }
        return sb.toString();
    }

    private static String median(Report r, String peer, String work, int t) {
        double[] v = r.get(peer, work, t);
        return v == null ? "n/a" : Report.time(Report.median(v));
    }

    private static Double across(Report now, Report old, String peer, String work, int t) {
        double[] a = now.get(peer, work, t), b = old.get(peer, work, t);
        return a == null || b == null ? null : Report.median(a) / Report.median(b);
    }
}
