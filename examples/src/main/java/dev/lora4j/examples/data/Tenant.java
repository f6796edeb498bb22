package dev.lora4j.examples.data;

import java.util.HashSet;
import java.util.List;
import java.util.Objects;

/**
 * A classification task over the Debian package corpus, served as one tenant: a name and the
 * Debian sections that are its classes (label i is {@code sections.get(i)}). Immutable.
 */
public record Tenant(String name, List<String> sections) {

    /** Programming-language ecosystems: which language a library or tool belongs to. */
    public static final Tenant LANGUAGES = new Tenant("languages",
            List.of("python", "perl", "rust", "golang", "javascript", "java", "ruby", "haskell", "php", "ocaml", "gnu-r"));

    /** Desktop and media: games, sound, graphics, video and the desktops. */
    public static final Tenant DESKTOP_MEDIA = new Tenant("desktop-media",
            List.of("games", "sound", "graphics", "video", "x11", "gnome", "kde", "fonts"));

    /** System software: administration, networking, libraries, development tools, servers. */
    public static final Tenant SYSTEM = new Tenant("system",
            List.of("admin", "net", "utils", "libs", "devel", "kernel", "database", "mail", "editors", "text", "web"));

    public Tenant {
        Objects.requireNonNull(name, "name");
        sections = List.copyOf(sections);
        if (sections.size() < 2) throw new IllegalArgumentException("tenant '" + name + "' needs at least two sections");
        if (new HashSet<>(sections).size() != sections.size()) throw new IllegalArgumentException("tenant '" + name + "' repeats a section");
    }

    /** The three tenants of the examples. */
    public static List<Tenant> defaults() {
        return List.of(LANGUAGES, DESKTOP_MEDIA, SYSTEM);
    }

    /** The label of {@code section}, or -1 when it is none of this tenant's classes. */
    public int label(String section) {
        return sections.indexOf(section);
    }
}
