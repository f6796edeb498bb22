package dev.lora4j.examples.data;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * Reads Debian package lists in the deb822 format of {@code apt-cache dumpavail} (and of
 * {@code Packages} files and {@code apt-cache show}): records separated by blank lines, fields
 * {@code Name: value}, continuation lines starting with a space. Keeps {@code Package},
 * {@code Section} and {@code Description} (or {@code Description-en}) and drops records
 * without one of them. Stateless and thread-safe.
 *
 * <p>Note: {@code apt-cache dumpavail} gives each package's synopsis only unless apt keeps the
 * {@code Translation-en} lists; extended descriptions are parsed when present.
 */
public final class DebianPackages {

    private DebianPackages() {}

    /** The packages of a list, with how many records it had and how many lacked a needed field. */
    public record Parsed(List<DebianPackage> packages, int records, int incomplete) {}

    /** What {@link #deduplicate} kept and dropped. */
    public record Deduplicated(List<DebianPackage> packages, int duplicates, int conflicting) {}

    /** Runs {@code apt-cache dumpavail} and parses its output. */
    public static Parsed dumpavail() throws IOException {
        Process p = new ProcessBuilder("apt-cache", "dumpavail").redirectError(ProcessBuilder.Redirect.DISCARD).start();
        Parsed parsed;
        try (Reader r = new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)) {
            parsed = parse(r);
        } catch (IOException | RuntimeException e) {
            p.destroy();
            throw e;
        }
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("apt-cache dumpavail did not exit");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for apt-cache dumpavail", e);
        }
        if (p.exitValue() != 0) throw new IOException("apt-cache dumpavail exited with status " + p.exitValue());
        return parsed;
    }

    /** Parses a file in the format of {@code apt-cache dumpavail} (UTF-8). */
    public static Parsed read(Path file) throws IOException {
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            return parse(r);
        }
    }

    /** Parses records from {@code in} (not closed). */
    public static Parsed parse(Reader in) throws IOException {
        BufferedReader r = in instanceof BufferedReader b ? b : new BufferedReader(in);
        List<DebianPackage> out = new ArrayList<>();
        int records = 0;
        int incomplete = 0;
        Map<String, List<String>> fields = newFields();
        List<String> current = null;
        String line;
        boolean first = true;
        while (true) {
            line = r.readLine();
            if (first && line != null && line.startsWith("\uFEFF")) line = line.substring(1); // a UTF-8 byte order mark
            first = false;
            if (line == null || line.isBlank()) {
                if (!fields.isEmpty()) {
                    records++;
                    DebianPackage p = record(fields);
                    if (p == null) incomplete++;
                    else out.add(p);
                    fields = newFields();
                }
                current = null;
                if (line == null) break;
                continue;
            }
            if (line.charAt(0) == ' ' || line.charAt(0) == '\t') {
                if (current != null) current.add(line); // a continuation line
                continue;
            }
            int colon = line.indexOf(':');
            if (colon <= 0) {
                current = null; // not a field: ignored
                continue;
            }
            current = new ArrayList<>();
            current.add(line.substring(colon + 1).strip());
            fields.put(line.substring(0, colon).strip(), current);
        }
        return new Parsed(out, records, incomplete);
    }

    /** deb822 field names are case-insensitive ({@code package:} is {@code Package:}). */
    private static Map<String, List<String>> newFields() {
        return new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
    }

    private static DebianPackage record(Map<String, List<String>> f) {
        List<String> name = f.get("Package");
        List<String> section = f.get("Section");
        List<String> desc = f.getOrDefault("Description", f.get("Description-en"));
        if (name == null || section == null || desc == null) return null;
        String n = name.get(0);
        String s = section.get(0);
        s = s.substring(s.lastIndexOf('/') + 1); // contrib/games, non-free/sound -> games, sound
        String synopsis = desc.get(0);
        if (n.isEmpty() || s.isEmpty() || synopsis.isEmpty()) return null;
        return new DebianPackage(n, s, synopsis, extended(desc.subList(1, desc.size())));
    }

    /**
     * The extended description of continuation lines, as Debian policy 5.6.13 reads them: a line
     * of a space and a single full stop is a blank line between paragraphs, a line starting with two
     * spaces is shown verbatim (also "  ."),
     * other lines are wrapped text joined with spaces.
     */
    static String extended(List<String> lines) {
        StringBuilder b = new StringBuilder();
        boolean inText = false; // the last thing written was wrapped text
        for (String l : lines) {
            String body = l.substring(1);
            if (body.stripTrailing().equals(".")) {
                if (!b.isEmpty()) b.append("\n\n");
                inText = false;
            } else if (body.startsWith(" ") || body.startsWith("\t")) {
                if (!b.isEmpty() && !b.toString().endsWith("\n")) b.append('\n');
                b.append(body.stripTrailing()).append('\n');
                inText = false;
            } else {
                if (inText) b.append(' ');
                b.append(body.strip());
                inText = true;
            }
        }
        return b.toString().strip();
    }

    /**
     * Removes repeated descriptions: of packages with the same text (whitespace runs counted as
     * one space), one is kept (the first by name) when they all share a section, and none when
     * their sections differ (the text would carry conflicting labels). The result is sorted by
     * package name, so it does not depend on the order of the list.
     */
    public static Deduplicated deduplicate(List<DebianPackage> packages) {
        Map<String, List<DebianPackage>> byText = new TreeMap<>();
        for (DebianPackage p : packages) byText.computeIfAbsent(normalized(p.text()), k -> new ArrayList<>()).add(p);
        List<DebianPackage> kept = new ArrayList<>();
        int duplicates = 0;
        int conflicting = 0;
        Comparator<DebianPackage> byName = Comparator.comparing(DebianPackage::name).thenComparing(DebianPackage::section);
        for (List<DebianPackage> same : byText.values()) {
            if (same.stream().map(DebianPackage::section).distinct().count() > 1) {
                conflicting += same.size();
                continue;
            }
            same.sort(byName);
            kept.add(same.get(0));
            duplicates += same.size() - 1;
        }
        kept.sort(byName);
        return new Deduplicated(List.copyOf(kept), duplicates, conflicting);
    }

    static String normalized(String text) {
        return text.strip().replaceAll("\\s+", " ");
    }
}
