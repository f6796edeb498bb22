package dev.lora4j.examples.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.Random;

/**
 * One tenant's labelled data set from the Debian package corpus: the (de-duplicated) packages
 * of the tenant's sections, at most {@code capPerClass} per class (a random choice, so that
 * large sections do not swamp small ones), split per class into train, validation and test
 * sets. Deterministic: the same package list, tenant and options give the same sets (the
 * packages are sorted before a {@link Random} seeded with {@code seed} shuffles them).
 * Immutable.
 */
public record PackageDataset(Tenant tenant, Options options, List<Example> train, List<Example> validation, List<Example> test,
        List<ClassCount> counts) {

    /** One labelled text. */
    public record Example(String text, int label, String packageName) {}

    /** One class's numbers: packages available after de-duplication, and how many each split got. */
    public record ClassCount(String section, int available, int train, int validation, int test) {
        public int used() {
            return train + validation + test;
        }
    }

    /** How to build: the cap per class, the seed and the fractions of each class for validation and test. */
    public record Options(int capPerClass, long seed, double validationFraction, double testFraction) {
        public Options {
            if (capPerClass < 1) throw new IllegalArgumentException("capPerClass must be >= 1, got " + capPerClass);
            if (!(validationFraction >= 0) || !(testFraction >= 0) || !(validationFraction + testFraction < 1)) {
                throw new IllegalArgumentException("validationFraction and testFraction must be >= 0 with a sum below 1, got "
                        + validationFraction + " and " + testFraction);
            }
        }

        /** 400 per class, seed 15, 10% validation, 10% test. */
        public static Options defaults() {
            return new Options(400, 15, 0.1, 0.1);
        }
    }

    public PackageDataset {
        train = List.copyOf(train);
        validation = List.copyOf(validation);
        test = List.copyOf(test);
        counts = List.copyOf(counts);
    }

    /**
     * Builds the tenant's data set from {@code packages} (de-duplicate them first with
     * {@link DebianPackages#deduplicate}; their order does not matter).
     */
    public static PackageDataset build(List<DebianPackage> packages, Tenant tenant, Options options) {
        Objects.requireNonNull(tenant, "tenant");
        Objects.requireNonNull(options, "options");
        List<List<DebianPackage>> byClass = new ArrayList<>();
        for (int i = 0; i < tenant.sections().size(); i++) byClass.add(new ArrayList<>());
        for (DebianPackage p : packages) {
            int label = tenant.label(p.section());
            if (label >= 0) byClass.get(label).add(p);
        }
        Random random = new Random(options.seed());
        List<Example> train = new ArrayList<>();
        List<Example> validation = new ArrayList<>();
        List<Example> test = new ArrayList<>();
        List<ClassCount> counts = new ArrayList<>();
        for (int label = 0; label < byClass.size(); label++) {
            List<DebianPackage> c = byClass.get(label);
            c.sort(Comparator.comparing(DebianPackage::name).thenComparing(DebianPackage::text));
            Collections.shuffle(c, random);
            int n = Math.min(c.size(), options.capPerClass());
            int nTest = (int) Math.round(n * options.testFraction());
            int nVal = (int) Math.round(n * options.validationFraction());
            int nTrain = n - nTest - nVal;
            for (int i = 0; i < n; i++) {
                DebianPackage p = c.get(i);
                Example e = new Example(p.text(), label, p.name());
                (i < nTest ? test : i < nTest + nVal ? validation : train).add(e);
            }
            counts.add(new ClassCount(tenant.sections().get(label), c.size(), nTrain, nVal, nTest));
        }
        Collections.shuffle(train, random);
        Collections.shuffle(validation, random);
        Collections.shuffle(test, random);
        return new PackageDataset(tenant, options, train, validation, test, counts);
    }

    /** The class balance as a table: per section the packages available and those in each split. */
    public String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format("tenant %s: %d classes, cap %d per class, seed %d%n", tenant.name(), counts.size(),
                options.capPerClass(), options.seed()));
        b.append(String.format("  %-12s %9s %6s %6s %6s%n", "section", "available", "train", "valid", "test"));
        for (ClassCount c : counts) {
            b.append(String.format("  %-12s %9d %6d %6d %6d%n", c.section(), c.available(), c.train(), c.validation(), c.test()));
        }
        b.append(String.format("  %-12s %9d %6d %6d %6d%n", "total", counts.stream().mapToInt(ClassCount::available).sum(),
                train.size(), validation.size(), test.size()));
        return b.toString();
    }
}
