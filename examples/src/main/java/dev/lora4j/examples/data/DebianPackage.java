package dev.lora4j.examples.data;

import java.util.Objects;

/**
 * One package record of a Debian package list: its name, its section (without an archive-area
 * prefix such as {@code contrib/}) and its description, split as Debian writes it into the
 * synopsis (the {@code Description:} line) and the extended description (the continuation
 * lines; paragraphs separated by a blank line, verbatim lines kept on their own line). Immutable.
 */
public record DebianPackage(String name, String section, String synopsis, String extended) {

    public DebianPackage {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(section, "section");
        Objects.requireNonNull(synopsis, "synopsis");
        Objects.requireNonNull(extended, "extended");
    }

    /** The text a classifier reads: the synopsis, then the extended description (when there is one) after a newline. */
    public String text() {
        return extended.isEmpty() ? synopsis : synopsis + "\n" + extended;
    }
}
