package dev.lora4j.examples.data;

import dev.lora4j.examples.Flags;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Prints the Debian package data sets of the three tenants and their class balance.
 * {@code --file F} reads a list in {@code apt-cache dumpavail}'s format instead of running it;
 * {@code --cap N} (400) and {@code --seed S} (15) as in {@link PackageDataset.Options}.
 */
public final class DebianData {

    private DebianData() {}

    public static void main(String[] args) throws IOException {
        Flags.check(args, java.util.List.of("--file", "--cap", "--seed"));
        String file = Flags.flag(args, "--file");
        DebianPackages.Parsed parsed = file == null ? DebianPackages.dumpavail() : DebianPackages.read(Path.of(file));
        DebianPackages.Deduplicated d = DebianPackages.deduplicate(parsed.packages());
        System.out.printf("%d records, %d without package, section or description; %d duplicate and %d conflicting descriptions dropped; %d packages%n",
                parsed.records(), parsed.incomplete(), d.duplicates(), d.conflicting(), d.packages().size());
        var defaults = PackageDataset.Options.defaults();
        var options = new PackageDataset.Options(Flags.intFlag(args, "--cap", defaults.capPerClass()),
                Flags.longFlag(args, "--seed", defaults.seed()), defaults.validationFraction(), defaults.testFraction());
        for (Tenant t : Tenant.defaults()) System.out.print(PackageDataset.build(d.packages(), t, options).report());
    }
}
