package dev.lora4j.examples.data;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.io.StringReader;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** Parsing {@code apt-cache dumpavail}'s format and de-duplicating descriptions, on a committed fixture of 41 records. */
class DebianPackagesTest {

    static Path fixture() {
        try {
            return Path.of(DebianPackagesTest.class.getResource("dumpavail-fixture.txt").toURI());
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    private static Map<String, DebianPackage> byName(List<DebianPackage> ps) {
        return ps.stream().collect(Collectors.toMap(DebianPackage::name, Function.identity()));
    }

    @Test
    void parsesTheFixture() throws IOException {
        DebianPackages.Parsed parsed = DebianPackages.read(fixture());
        assertEquals(41, parsed.records());
        assertEquals(1, parsed.incomplete(), "the record without a section");
        assertEquals(40, parsed.packages().size());
        Map<String, DebianPackage> p = byName(parsed.packages());
        assertEquals(new DebianPackage("python3-abydos", "python", "NLP/IR library of phonetic algorithms, string distances and more", ""),
                p.get("python3-abydos"));
        assertEquals("games", p.get("game-data-packager").section(), "contrib/ stripped");
        assertEquals("kernel", p.get("firmware-example-wifi").section(), "non-free-firmware/ stripped");
        assertEquals("Binary firmware for an example wireless chip\nThis package contains the binary firmware for the example chips.",
                p.get("firmware-example-wifi").text(), "Description-en read as Description");
        DebianPackage hello = p.get("hello");
        assertEquals("devel", hello.section());
        assertEquals("example package based on GNU hello", hello.synopsis());
        assertEquals("The GNU hello program produces a familiar, friendly greeting.  It allows non-programmers to use a classic"
                + " computer science tool which would otherwise be unavailable to them.\n\n"
                + "Seriously, though: this is an example of how to do a Debian package. It is the Debian version of the GNU"
                + " Project's `hello world' program (which is itself an example for the GNU Project).\n\n"
                + "Usage:\n  hello --greeting=TEXT\n  hello --traditional", hello.extended());
        assertFalse(p.containsKey("no-section-here"));
    }

    @Test
    void recordsNeedNoTrailingBlankLineAndIgnoreJunk() throws IOException {
        String text = "junk line without colon\nPackage: a\nSection: utils\nDescription: first\n\n\n\nPackage: b\nSection: net\nDescription: second\n more";
        DebianPackages.Parsed parsed = DebianPackages.parse(new StringReader(text));
        assertEquals(2, parsed.records());
        assertEquals(List.of(new DebianPackage("a", "utils", "first", ""), new DebianPackage("b", "net", "second", "more")),
                parsed.packages());
    }

    @Test
    void deduplicatesDescriptionsAndDropsConflictingOnes() throws IOException {
        List<DebianPackage> all = DebianPackages.read(fixture()).packages();
        DebianPackages.Deduplicated d = DebianPackages.deduplicate(all);
        assertEquals(1, d.duplicates(), "python3-dupe-b repeats python3-dupe-a (up to whitespace)");
        assertEquals(2, d.conflicting(), "'transitional package' is both perl and ruby");
        assertEquals(37, d.packages().size());
        Map<String, DebianPackage> p = byName(d.packages());
        assertTrue(p.containsKey("python3-dupe-a"));
        assertFalse(p.containsKey("python3-dupe-b"));
        assertFalse(p.containsKey("libconflict-perl"));
        assertFalse(p.containsKey("ruby-conflict"));
        // independent of the list's order
        List<DebianPackage> reversed = new java.util.ArrayList<>(all);
        java.util.Collections.reverse(reversed);
        assertEquals(d, DebianPackages.deduplicate(reversed));
    }

    /** A file saved with a UTF-8 byte order mark keeps its first record. */
    @Test
    void aByteOrderMarkDoesNotDropTheFirstRecord() throws IOException {
        java.nio.file.Path f = java.nio.file.Files.createTempFile("packages", ".txt");
        try {
            java.nio.file.Files.writeString(f, "\uFEFFPackage: a\nSection: utils\nDescription: first\n\nPackage: b\nSection: net\nDescription: second\n");
            assertEquals(List.of(new DebianPackage("a", "utils", "first", ""), new DebianPackage("b", "net", "second", "")),
                    DebianPackages.read(f).packages());
        } finally {
            java.nio.file.Files.delete(f);
        }
    }

    /** deb822 field names are case-insensitive. */
    @Test
    void fieldNamesAreCaseInsensitive() throws IOException {
        String text = "package: a\nSECTION: utils\ndescription: first\n more\n\nPackage: b\nSection: net\ndescription-EN: second\n";
        assertEquals(List.of(new DebianPackage("a", "utils", "first", "more"), new DebianPackage("b", "net", "second", "")),
                DebianPackages.parse(new StringReader(text)).packages());
    }

    /** Policy 5.6.13: only a space and a single full stop is a blank line; "  ." (two spaces) is a verbatim line. */
    @Test
    void onlyASpaceAndAFullStopIsAParagraphBreak() {
        assertEquals("one\n\ntwo", DebianPackages.extended(List.of(" one", " .", " two")));
        assertEquals("one\n .\ntwo", DebianPackages.extended(List.of(" one", "  .", " two")));
    }
}
