package dev.lora4j.examples;

/** Reads {@code --name value} flags of the example programs. */
public final class Flags {

    private Flags() {}

    public static int intFlag(String[] args, String name, int def) {
        String v = flag(args, name);
        return v == null ? def : Integer.parseInt(v);
    }

    public static double doubleFlag(String[] args, String name, double def) {
        String v = flag(args, name);
        return v == null ? def : Double.parseDouble(v);
    }

    public static String flag(String[] args, String name) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) return args[i + 1];
        }
        return null;
    }
}
