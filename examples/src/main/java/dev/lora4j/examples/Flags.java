package dev.lora4j.examples;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads {@code --name value} and {@code --name=value} flags of the example programs. Each main
 * first calls {@link #check} with the flags it knows, so that a misspelled or unknown flag, a
 * flag without a value and a stray argument are refused by name instead of being ignored.
 */
public final class Flags {

    private Flags() {}

    /** Refuses any argument that is not one of the {@code known} flags followed by its value. */
    public static void check(String[] args, Collection<String> known) {
        check(args, known, List.of());
    }

    /**
     * Refuses any argument that is not one of the {@code known} flags followed by its value (as the
     * next argument or after {@code =}) or one of the {@code switches} (flags without a value), and
     * a flag given twice with different values (scripts such as {@code scripts/serve.sh} pass a
     * flag of their own again as the caller gave it).
     */
    public static void check(String[] args, Collection<String> known, Collection<String> switches) {
        Map<String, String> seen = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--") || a.length() == 2)
                throw new IllegalArgumentException("unexpected argument '" + a + "': flags are --name value or --name=value");
            int eq = a.indexOf('=');
            String name = eq < 0 ? a : a.substring(0, eq);
            String value = "";
            if (switches.contains(name)) {
                if (eq >= 0) throw new IllegalArgumentException("flag " + name + " takes no value, got '" + a + "'");
            } else if (!known.contains(name)) {
                List<String> all = new ArrayList<>(known);
                all.addAll(switches);
                throw new IllegalArgumentException("unknown flag " + name + " (this program knows " + String.join(", ", all) + ")");
            } else if (eq < 0) {
                if (i + 1 >= args.length || args[i + 1].startsWith("--"))
                    throw new IllegalArgumentException("flag " + name + " needs a value: " + name + " VALUE or " + name + "=VALUE");
                value = args[++i];
            } else {
                value = a.substring(eq + 1);
            }
            String before = seen.putIfAbsent(name, value);
            if (before != null && !before.equals(value))
                throw new IllegalArgumentException("flag " + name + " is given twice, with different values: '" + before + "' and '" + value + "'");
        }
    }

    /** Known flag lists joined, for a main that reads the flags of several parts. */
    @SafeVarargs
    public static List<String> union(Collection<String>... lists) {
        List<String> all = new ArrayList<>();
        for (Collection<String> l : lists) all.addAll(l);
        return List.copyOf(all);
    }

    public static int intFlag(String[] args, String name, int def) {
        return parsed(args, name, def, Integer::parseInt, "an integer from " + Integer.MIN_VALUE + " to " + Integer.MAX_VALUE);
    }

    public static long longFlag(String[] args, String name, long def) {
        return parsed(args, name, def, Long::parseLong, "an integer from " + Long.MIN_VALUE + " to " + Long.MAX_VALUE);
    }

    public static double doubleFlag(String[] args, String name, double def) {
        return parsed(args, name, def, Double::parseDouble, "a number");
    }

    /** The value of {@code name} read by {@code parse}, {@code def} when absent; a value that does not parse names the flag. */
    private static <T> T parsed(String[] args, String name, T def, java.util.function.Function<String, T> parse, String what) {
        String v = flag(args, name);
        if (v == null) return def;
        try {
            return parse.apply(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be " + what + ", got '" + v + "'");
        }
    }

    /** The value of {@code name} ({@code --name value} or {@code --name=value}), or null when absent. */
    public static String flag(String[] args, String name) {
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals(name)) {
                if (i + 1 >= args.length || args[i + 1].startsWith("--"))
                    throw new IllegalArgumentException("flag " + name + " needs a value: " + name + " VALUE or " + name + "=VALUE");
                return args[i + 1];
            }
            if (args[i].startsWith(name + "=")) return args[i].substring(name.length() + 1);
        }
        return null;
    }
}
