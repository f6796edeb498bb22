package dev.lora4j.examples.data;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The tenants' data sets: capped per class, split per class, labels matching sections,
 * splits disjoint, deterministic and independent of the list's order; on the fixture, and on
 * this machine's real package list when apt has one.
 */
class PackageDatasetTest {

    private static void checkConsistent(PackageDataset ds, List<DebianPackage> packages) {
        Map<String, DebianPackage> byName = packages.stream().collect(Collectors.toMap(DebianPackage::name, Function.identity()));
        Set<String> seen = new HashSet<>();
        int[] perLabel = new int[ds.tenant().sections().size()];
        for (PackageDataset.Example e : Stream.of(ds.train(), ds.validation(), ds.test()).flatMap(List::stream).toList()) {
            DebianPackage p = byName.get(e.packageName());
            assertEquals(ds.tenant().sections().get(e.label()), p.section(), e.packageName());
            assertEquals(p.text(), e.text());
            assertTrue(seen.add(e.text()), "a text in two places: " + e.text());
            perLabel[e.label()]++;
        }
        for (int i = 0; i < perLabel.length; i++) {
            PackageDataset.ClassCount c = ds.counts().get(i);
            assertEquals(ds.tenant().sections().get(i), c.section());
            assertEquals(Math.min(c.available(), ds.options().capPerClass()), c.used(), c.section());
            assertEquals(c.used(), perLabel[i], c.section());
            assertEquals(c.available(), packages.stream().filter(p -> p.section().equals(c.section())).count(), c.section());
        }
        assertEquals(ds.counts().stream().mapToInt(PackageDataset.ClassCount::train).sum(), ds.train().size());
        assertEquals(ds.counts().stream().mapToInt(PackageDataset.ClassCount::validation).sum(), ds.validation().size());
        assertEquals(ds.counts().stream().mapToInt(PackageDataset.ClassCount::test).sum(), ds.test().size());
    }

    @Test
    void fixtureTenantsAreCappedSplitAndDeterministic() throws IOException {
        List<DebianPackage> packages = DebianPackages.deduplicate(DebianPackages.read(DebianPackagesTest.fixture()).packages()).packages();
        var options = new PackageDataset.Options(3, 7, 1.0 / 3, 1.0 / 3);
        PackageDataset ds = PackageDataset.build(packages, Tenant.LANGUAGES, options);
        checkConsistent(ds, packages);
        // python: 3 real + python3-dupe-a = 4 available, capped to 3 = 1 train, 1 validation, 1 test; ruby: none left
        assertEquals(new PackageDataset.ClassCount("python", 4, 1, 1, 1), ds.counts().get(0));
        assertEquals(new PackageDataset.ClassCount("ruby", 0, 0, 0, 0), ds.counts().get(6));
        assertTrue(ds.report().contains("python"));
        assertTrue(ds.report().lines().anyMatch(l -> l.matches("\\s+python\\s+4\\s+1\\s+1\\s+1")), ds.report());

        List<DebianPackage> shuffled = new ArrayList<>(packages);
        Collections.shuffle(shuffled, new Random(99));
        assertEquals(ds, PackageDataset.build(shuffled, Tenant.LANGUAGES, options), "independent of the list's order");
        for (Tenant t : Tenant.defaults()) checkConsistent(PackageDataset.build(packages, t, options), packages);
        assertEquals(4, PackageDataset.build(packages, Tenant.DESKTOP_MEDIA, options).counts().get(0).available(),
                "games: three records and the contrib/games one");
    }

    @Test
    void badOptionsAreRefusedByName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new PackageDataset.Options(0, 1, 0.1, 0.1)).getMessage().contains("capPerClass"));
        assertThrows(IllegalArgumentException.class, () -> new PackageDataset.Options(5, 1, 0.5, 0.5));
        assertThrows(IllegalArgumentException.class, () -> new PackageDataset.Options(5, 1, Double.NaN, 0.1));
        assertThrows(IllegalArgumentException.class, () -> new Tenant("x", List.of("a")));
        assertThrows(IllegalArgumentException.class, () -> new Tenant("x", List.of("a", "a")));
    }

    /** The real corpus: this machine's package list, when apt-cache has a large one (else skipped, with the reason). */
    @Test
    void theRealCorpusHasTheTenantsClasses() throws IOException {
        boolean apt = Stream.of(System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator))
                .anyMatch(d -> !d.isEmpty() && Files.isExecutable(Path.of(d, "apt-cache")));
        assumeTrue(apt, "no apt-cache on the PATH");
        DebianPackages.Parsed parsed = DebianPackages.dumpavail();
        assumeTrue(parsed.records() > 10_000, "apt-cache dumpavail gave " + parsed.records() + " records (run apt-get update)");
        List<DebianPackage> packages = DebianPackages.deduplicate(parsed.packages()).packages();
        assertTrue(packages.size() > parsed.records() / 2, packages.size() + " of " + parsed.records());
        var options = PackageDataset.Options.defaults();
        for (Tenant t : Tenant.defaults()) {
            PackageDataset ds = PackageDataset.build(packages, t, options);
            System.out.print(ds.report());
            checkConsistent(ds, packages);
            for (PackageDataset.ClassCount c : ds.counts()) {
                // Debian 12 has ≥ 147 per class, Debian 13 (the LibTorch 2.6 tree) 97 kernel packages.
                assertTrue(c.available() >= 50, t.name() + ": section " + c.section() + " has only " + c.available() + " packages");
                assertTrue(c.train() >= 40 && c.validation() >= 5 && c.test() >= 5, t.name() + ": " + c);
            }
            assertEquals(ds, PackageDataset.build(packages, t, options), "deterministic");
        }
    }
}
