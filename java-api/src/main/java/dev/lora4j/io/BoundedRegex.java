package dev.lora4j.io;

import java.io.IOException;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * PEFT's pattern-key matching ({@code get_pattern_key}: a {@code rank_pattern} or
 * {@code alpha_pattern} key {@code k} matches module name {@code n} when
 * {@code re.match(rf"(.*\.)?({k})$", n)}) for keys that come from a file: the keys are
 * untrusted regular expressions, so every match runs under a budget of character reads (per
 * match, and in total for one load), and a catastrophic pattern is refused by name instead of
 * hanging the loader. A plain key on a module name of length L costs a few L reads.
 *
 * <p>Not thread-safe: one instance per load.
 */
final class BoundedRegex {

    /** Longest key accepted (characters). */
    static final int MAX_KEY = 1024;
    /** Character reads one match may take. */
    static final long MATCH_BUDGET = 200_000L;
    /** Character reads one load may spend on all its matches (a few seconds of matching at worst). */
    static final long DEFAULT_BUDGET = 10_000_000L;

    /** How {@link #compile} opens a suffix pattern. */
    private static final String SUFFIX_START = "(.*\\.)?(";

    private final String where;
    private long budget;

    BoundedRegex(String where, long budget) {
        this.where = where;
        this.budget = budget;
    }

    /** Compiles {@code key} as PEFT's suffix pattern {@code (.*\.)?(key)}, refusing bad or oversized keys by name. */
    Pattern compile(String field, String key) throws IOException {
        if (key.length() > MAX_KEY) throw new IOException(where + ": " + field + " key of " + key.length() + " characters (at most " + MAX_KEY + ")");
        try {
            return Pattern.compile(SUFFIX_START + key + ")");
        } catch (PatternSyntaxException e) {
            throw new IOException(where + ": " + field + " key '" + key + "' is not a valid regular expression: " + e.getDescription());
        }
    }

    /** Longest whole-path expression accepted (characters): generated alternations over every layer run long. */
    static final int MAX_WHOLE = 64 * 1024;

    /**
     * Compiles {@code key} as a regular expression over the whole text (PEFT's {@code re.fullmatch}
     * of a string target_modules), Python's named groups ({@code (?P<n>...)}, {@code (?P=n)}) in
     * Java's spelling.
     */
    Pattern compileWhole(String field, String key) throws IOException {
        if (key.length() > MAX_WHOLE) throw new IOException(where + ": " + field + " of " + key.length() + " characters (at most " + MAX_WHOLE + ")");
        try {
            return Pattern.compile(key.replace("(?P<", "(?<").replaceAll("\\(\\?P=(\\w+)\\)", "\\\\k<$1>"));
        } catch (PatternSyntaxException e) {
            String shown = key.length() <= 200 ? key : key.substring(0, 197) + "...";
            throw new IOException(where + ": " + field + " '" + shown + "' is not a valid regular expression: " + e.getDescription());
        }
    }

    /** Whether {@code p} matches all of {@code text}, within the remaining budget. */
    boolean matches(String field, Pattern p, String text) throws IOException {
        Counted in = new Counted(text);
        try {
            return p.matcher(in).matches();
        } catch (BudgetExceeded | StackOverflowError e) {
            String key = p.pattern().startsWith(SUFFIX_START) ? p.pattern().substring(SUFFIX_START.length(), p.pattern().length() - 1) : p.pattern();
            throw new IOException(where + ": " + field + " key '" + key
                    + "' takes too long to match module '" + text + "' (catastrophic backtracking?): refused");
        } finally {
            budget -= in.reads;
        }
    }

    private static final class BudgetExceeded extends RuntimeException {
        BudgetExceeded() {
            super(null, null, false, false);
        }
    }

    /** The text, counting every character the matcher reads against the remaining budget. */
    private final class Counted implements CharSequence {
        private final String s;
        long reads;

        Counted(String s) {
            this.s = s;
        }

        @Override
        public char charAt(int i) {
            if (++reads > MATCH_BUDGET || reads > budget) throw new BudgetExceeded();
            return s.charAt(i);
        }

        @Override
        public int length() {
            return s.length();
        }

        @Override
        public CharSequence subSequence(int start, int end) {
            return s.subSequence(start, end);
        }

        @Override
        public String toString() {
            return s;
        }
    }
}
