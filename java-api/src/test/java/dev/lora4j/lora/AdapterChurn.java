package dev.lora4j.lora;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.io.PeftAdapter;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.Sequential;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The child-JVM part of {@link AdapterChurnTest}: forward threads and one thread that loads,
 * deletes, merges, unmerges, sets, combines and disables adapters of the same model through
 * lora4j's public operations, one call per change. Every forward's answer must equal the
 * answer a serial run gives in one state the forward could have seen. Weights, factors and
 * inputs are small dyadic rationals, so every sum is exact in float32: merge + unmerge gives the
 * base weight back bit for bit and the cycle of changes returns to its first state exactly.
 * Then the same for a lone {@link AdapterBank} (put and remove while deltas run). Prints
 * "churn ok ..." and exits 0, or prints the mismatches and exits 1.
 *
 * <p>Arguments: seconds, forward threads.
 */
public final class AdapterChurn {

    private static final String BASE = AdapterBank.BASE;
    private static final String[][] ROWS = {
        {"a", BASE, "a", "a"}, {"b", "a", BASE, "b"}, {"ab", "b", "a", BASE},
    };

    private AdapterChurn() {}

    /** The changes, one library call each; after them all the model is in its first state again. */
    private static List<Runnable> cycle(Module m, Path dirB) {
        return List.of(
                () -> load(m, dirB, "b"),
                () -> Lora.setAdapter(m, "b"),
                () -> Lora.merge(m, false),
                () -> Lora.unmerge(m),
                () -> Lora.addWeightedAdapter(m, List.of("a", "b"), new double[] {1, 1}, "ab", Combination.LINEAR, 0),
                () -> Lora.setAdapter(m, "a", "ab"),
                () -> Lora.deleteAdapter(m, "ab"),
                () -> Lora.setAdaptersEnabled(m, false),
                () -> Lora.setAdaptersEnabled(m, true),
                () -> Lora.deleteAdapter(m, "b"));
    }

    private static void load(Module m, Path dir, String name) {
        try {
            PeftAdapter.load(m, dir, name);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** What query q gives now: the output's floats, or the exception's class. */
    private static String answer(Module m, Tensor x, int q) {
        try (TensorScope s = TensorScope.open()) {
            Tensor y = q == 0 ? Lora.forward(m, x) : Lora.forward(m, x, ROWS[q - 1]);
            return Arrays.toString(y.toFloatArray());
        } catch (IllegalArgumentException | IllegalStateException e) {
            return e.getClass().getSimpleName();
        }
    }

    private static String[] answers(Module m, Tensor x) {
        String[] out = new String[ROWS.length + 1];
        for (int q = 0; q < out.length; q++) out[q] = answer(m, x, q);
        return out;
    }

    static Sequential baseModel() {
        Sequential m = new Sequential(new Linear(8, 16), Activation.relu(), new Linear(16, 4));
        Random rnd = new Random(7);
        try (var ng = Torch.noGrad()) {
            for (Tensor p : m.parameters()) p.copy_(dyadic(rnd, p.shape(), 8, 8));
        }
        m.eval();
        return m;
    }

    /** Values k/denominator with |k| <= range. */
    static Tensor dyadic(Random rnd, long[] shape, int range, int denominator) {
        int n = (int) Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextInt(2 * range + 1) - range) / denominator;
        return Tensor.of(v, shape);
    }

    /** Writes a PEFT folder for the base model with factors from {@code seed}. */
    static Path adapterFolder(Path root, String name, long seed) throws Exception {
        Path dir = Files.createDirectories(root.resolve(name));
        try (Sequential m = baseModel()) {
            Lora.wrap(m, LoraConfig.of(2, 2));
            Random rnd = new Random(seed);
            try (var ng = Torch.noGrad()) {
                for (LoraLayer l : Lora.loraLayers(m).values()) {
                    l.loraA().copy_(dyadic(rnd, l.loraA().shape(), 4, 4));
                    l.loraB().copy_(dyadic(rnd, l.loraB().shape(), 4, 4));
                }
            }
            PeftAdapter.save(m, LoraLayer.DEFAULT_ADAPTER, dir);
        }
        return dir;
    }

    public static void main(String[] args) throws Exception {
        double seconds = Double.parseDouble(args[0]);
        int threads = Integer.parseInt(args[1]);
        Torch.setNumThreads(1);
        Path root = Files.createTempDirectory("lora4j-churn");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> dev.lora4j.testing.ChildJvm.deleteTree(root)));
        Path dirA = adapterFolder(root, "a", 11);
        Path dirB = adapterFolder(root, "b", 12);
        Sequential model = baseModel();
        PeftAdapter.load(model, dirA, "a");
        Tensor x = dyadic(new Random(3), new long[] {4, 8}, 4, 4).keep();
        List<java.util.function.Supplier<String>> queries = new ArrayList<>();
        for (int q = 0; q <= ROWS.length; q++) {
            int query = q;
            queries.add(() -> answer(model, x, query));
        }
        String modelReport = churn(cycle(model, dirB), queries, seconds * 0.8, threads);

        // A lone AdapterBank: put and remove while deltas run.
        AdapterBank bank = new AdapterBank(8, 4);
        Random rnd = new Random(5);
        Tensor[] p = {dyadic(rnd, new long[] {2, 8}, 4, 4).keep(), dyadic(rnd, new long[] {4, 2}, 4, 4).keep()};
        Tensor[] q = {dyadic(rnd, new long[] {3, 8}, 4, 4).keep(), dyadic(rnd, new long[] {4, 3}, 4, 4).keep()};
        bank.put("p", p[0], p[1], 1);
        List<Runnable> bankCycle = List.of(
                () -> bank.put("q", q[0], q[1], 2),
                () -> bank.remove("p"),
                () -> bank.put("p", p[0], p[1], 1),
                () -> bank.remove("q"));
        List<java.util.function.Supplier<String>> bankQueries = List.of(
                () -> delta(bank, x, "p", BASE, "p", "p"),
                () -> delta(bank, x, "q", "p", BASE, "q"));
        String bankReport = churn(bankCycle, bankQueries, seconds * 0.2, threads);
        System.out.println("churn ok: model " + modelReport + "; bank " + bankReport);
        System.exit(0);
    }

    private static String delta(AdapterBank bank, Tensor x, String... rows) {
        try (TensorScope s = TensorScope.open(); var ng = Torch.noGrad()) {
            return Arrays.toString(bank.delta(x, rows).toFloatArray());
        } catch (IllegalArgumentException e) {
            return e.getClass().getSimpleName();
        }
    }

    /**
     * Runs {@code cycle} round and round on this thread while {@code threads} threads run the
     * queries; every answer must be the serial answer in a state the query could have seen
     * (between the changes done when it started and those begun when it ended). Exits 1 on a
     * mismatch; returns a summary.
     */
    private static String churn(List<Runnable> cycle, List<java.util.function.Supplier<String>> queries, double seconds, int threads)
            throws InterruptedException {
        int period = cycle.size();
        // The serial truth: every query's answer in every state, twice round the cycle.
        String[][] expected = new String[period][];
        try (var ng = Torch.noGrad()) {
            for (int round = 0; round < 2; round++) {
                for (int s = 0; s < period; s++) {
                    String[] now = queries.stream().map(java.util.function.Supplier::get).toArray(String[]::new);
                    if (round == 0) expected[s] = now;
                    else if (!Arrays.equals(expected[s], now)) fail("the cycle is not exact: state " + s + " differs in round 2");
                    cycle.get(s).run();
                }
            }
        }
        AtomicLong begun = new AtomicLong();
        AtomicLong done = new AtomicLong();
        AtomicLong forwards = new AtomicLong();
        ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        long end = System.nanoTime() + (long) (seconds * 1e9);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int seed = t;
            workers.add(Thread.ofPlatform().start(() -> {
                Random rnd = new Random(seed);
                try (var ng = Torch.noGrad()) {
                    while (System.nanoTime() < end && errors.size() < 10) {
                        int q = rnd.nextInt(queries.size());
                        long lo = done.get();
                        String got = queries.get(q).get();
                        long hi = begun.get();
                        boolean ok = false;
                        for (long s = lo; s <= hi && !ok; s++) ok = expected[(int) (s % period)][q].equals(got);
                        if (!ok) errors.add("query " + q + " in states " + lo + ".." + hi + " gave " + got);
                        forwards.incrementAndGet();
                    }
                } catch (Throwable e) {
                    errors.add("query thread: " + e);
                }
            }));
        }
        long changes = 0;
        try {
            while (System.nanoTime() < end && errors.isEmpty()) {
                Runnable op = cycle.get((int) (begun.get() % period));
                begun.incrementAndGet();
                op.run();
                done.incrementAndGet();
                changes++;
            }
        } catch (Throwable e) {
            errors.add("change " + begun.get() + ": " + e);
        }
        for (Thread w : workers) w.join();
        if (!errors.isEmpty()) {
            errors.forEach(System.out::println);
            System.exit(1);
        }
        return forwards.get() + " queries, " + changes + " changes in " + String.format(java.util.Locale.ROOT, "%.1f", seconds) + " s";
    }

    private static void fail(String message) {
        System.out.println(message);
        System.exit(1);
    }
}
