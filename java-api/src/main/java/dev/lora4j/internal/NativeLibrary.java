package dev.lora4j.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * Finds and loads {@code liblora4j.so} (and, when asked, LibTorch) once per class loader.
 *
 * <p>Search order for the shim: the system property {@code lora4j.shim} (a file), a
 * {@code liblora4j.so} next to the jar that holds this class, then the native artifacts on the
 * class path ({@code dev.lora4j:lora4j-native} with a classifier per platform and LibTorch line,
 * e.g. {@code linux-x86_64-libtorch2.6}): the first whose LibTorch is present is extracted into a
 * private folder ({@link SecureExtraction}) and loaded.
 *
 * <p>LibTorch is found by the system's dynamic linker (Debian's {@code libtorch-dev} puts it
 * on the default path) unless {@code -Dlora4j.libtorch=DIR} names a folder holding
 * {@code libc10.so}, {@code libtorch_cpu.so} and {@code libtorch.so}; those are then loaded
 * first, by absolute path.
 *
 * <p>A shim built for another LibTorch than the one present is refused before it is loaded, with
 * a {@link dev.lora4j.LibTorchMismatchError} that says which LibTorch the shim needs, which was found, and
 * how to fix it. LibTorch's own handlers for the signals the JVM relies on are removed right
 * after loading ({@link SignalHandlers}; {@code -Dlora4j.restoreSignalHandlers=false} keeps them).
 *
 * <h2>Memory allocator</h2>
 * LibTorch allocates every tensor with the C library's {@code malloc}. glibc's defaults hand
 * blocks above a threshold (128 KiB, raised dynamically up to 32 MiB) straight to {@code mmap},
 * and give freed memory at the top of the heap back to the system above a trim threshold; a
 * training step that allocates and frees the same few megabyte-sized tensors (gradients,
 * activations) every time then page-faults all of them in again, step after step: on the seed-000
 * MLP's training step that is ~1 million minor page faults per second and half of the step's time
 * (see the README's performance section). So, once at load, lora4j sets glibc's
 * {@code M_MMAP_THRESHOLD} to 32 MiB, {@code M_TRIM_THRESHOLD} to 256 MiB and {@code M_TOP_PAD}
 * to 64 MiB (through {@code lt_malloc_tune}, i.e. {@code mallopt}): blocks up to 32 MiB are
 * recycled from the heap, and up to 256 MiB of freed memory stays mapped for reuse. The price is
 * a resident size that does not shrink back after a peak, which is what a training or serving
 * process wants. This is process-wide (it also affects the JVM's own native allocations, which
 * are few). It is skipped when:
 * <ul>
 *   <li>{@code -Dlora4j.malloc=default} or the environment variable {@code LORA4J_MALLOC=default}
 *       asks for glibc's defaults;
 *   <li>the environment already sets malloc's behaviour ({@code GLIBC_TUNABLES} with a
 *       {@code glibc.malloc.*} tunable, or {@code MALLOC_MMAP_THRESHOLD_},
 *       {@code MALLOC_TRIM_THRESHOLD_}, {@code MALLOC_TOP_PAD_}): the user's choice wins;
 *   <li>another allocator is preloaded ({@code LD_PRELOAD} naming jemalloc, tcmalloc or
 *       mimalloc; jemalloc needs {@code MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1} to match
 *       the tuned glibc on that step);
 *   <li>the C library is not glibc.
 * </ul>
 * {@link #allocator()} says what was decided.
 *
 * <p>Thread-safe: loading happens in the class initializer.
 */
public final class NativeLibrary {

    /** Where the native jars keep each shim: RESOURCE_DIR + classifier + "/liblora4j.so" (and .properties). */
    static final String RESOURCE_DIR = "META-INF/lora4j/native/";
    /** One per native jar, holding its classifier. */
    static final String NATIVE_INDEX = "META-INF/lora4j/native.index";
    private static Path shim;
    private static ShimInfo shimInfo;
    /** lora4j's malloc setting: mmap threshold, trim threshold, top pad (bytes). */
    static final long MMAP_THRESHOLD = 32L << 20;
    static final long TRIM_THRESHOLD = 256L << 20;
    static final long TOP_PAD = 64L << 20;
    private static String allocator = "not configured";
    private static final String LIB_NAME = "liblora4j.so";

    static {
        load();
    }

    private NativeLibrary() {}

    /** What lora4j decided about glibc's malloc at load (see the class comment), in words. */
    public static String allocator() {
        return allocator;
    }

    private static void configureAllocator() {
        String choice = System.getProperty("lora4j.malloc", System.getenv().getOrDefault("LORA4J_MALLOC", "tuned"));
        String tunables = System.getenv().getOrDefault("GLIBC_TUNABLES", "");
        String preload = System.getenv().getOrDefault("LD_PRELOAD", "");
        if (choice.equalsIgnoreCase("default")) {
            allocator = "glibc defaults (lora4j.malloc=default)";
        } else if (!choice.equalsIgnoreCase("tuned")) {
            throw new IllegalArgumentException("lora4j.malloc / LORA4J_MALLOC must be 'tuned' or 'default', got '" + choice + "'");
        } else if (tunables.contains("glibc.malloc.") || System.getenv("MALLOC_MMAP_THRESHOLD_") != null
                || System.getenv("MALLOC_TRIM_THRESHOLD_") != null || System.getenv("MALLOC_TOP_PAD_") != null) {
            allocator = "set by the environment (GLIBC_TUNABLES / MALLOC_*_), left alone";
        } else if (preload.matches(".*(jemalloc|tcmalloc|mimalloc).*")) {
            allocator = "preloaded allocator (" + preload + "), left alone";
        } else {
            int status = dev.lora4j.bindings.LibLora4j.lt_malloc_tune(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD);
            allocator = status == 0
                    ? "glibc tuned by lora4j: mmap_threshold 32 MiB, trim_threshold 256 MiB, top_pad 64 MiB"
                    : "glibc defaults (tuning unavailable: status " + status + ")";
        }
    }

    /** Makes sure the native library is loaded; cheap after the first call. */
    public static void ensureLoaded() {
        // The static initializer did the work.
    }

    private static void load() {
        ThreadDefaults.apply(); // before LibTorch (and its libgomp) loads
        SignalHandlers.Snapshot jvmHandlers = SignalHandlers.snapshot();
        String libtorch = System.getProperty("lora4j.libtorch");
        if (libtorch != null && !libtorch.isBlank()) {
            for (String name : List.of("libc10.so", "libtorch_cpu.so", "libtorch.so")) {
                Path p = Path.of(libtorch, name);
                if (!Files.exists(p)) {
                    throw new UnsatisfiedLinkError("-Dlora4j.libtorch=" + libtorch + " has no " + name);
                }
                System.load(p.toAbsolutePath().toString());
            }
        }
        shim = locateShim();
        try {
            System.load(shim.toString());
        } catch (UnsatisfiedLinkError e) {
            throw LibTorchCheck.explain(shim, shimInfo, e);
        } finally {
            // -Dlora4j.restoreSignalHandlers=false keeps LibTorch's handlers (the JVM will then
            // die on its first implicit null check unless libjsig.so is preloaded).
            if (!"false".equals(System.getProperty("lora4j.restoreSignalHandlers"))) jvmHandlers.restore();
        }
        configureAllocator();
    }

    /** The shim that was loaded. */
    public static Path shim() {
        return shim;
    }

    /** The LibTorch version the loaded shim was built for, from its metadata, or null when it has none. */
    public static String shimLibTorchVersion() {
        return shimInfo == null ? null : shimInfo.libtorchVersion();
    }

    private static Path locateShim() {
        String explicit = System.getProperty("lora4j.shim");
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit).toAbsolutePath();
            if (!Files.isRegularFile(p)) {
                throw new UnsatisfiedLinkError("-Dlora4j.shim=" + explicit + " is not a file");
            }
            return checked(p, ShimInfo.besideShim(p));
        }
        Path besideJar = besideJar();
        if (besideJar != null) return checked(besideJar, ShimInfo.besideShim(besideJar));
        return extractPackaged();
    }

    /** The shim, once the LibTorch it needs is known to be present; otherwise a clear refusal. */
    private static Path checked(Path path, ShimInfo info) {
        shimInfo = info;
        if (info != null && !LibTorchCheck.present(info.probeLibrary())) {
            throw LibTorchCheck.refuse(path.toString(), List.of(info));
        }
        return path;
    }

    private static Path besideJar() {
        try {
            var source = NativeLibrary.class.getProtectionDomain().getCodeSource();
            if (source == null) return null;
            Path location = Path.of(source.getLocation().toURI());
            if (!Files.isRegularFile(location)) return null; // a classes folder, not a jar
            Path candidate = location.resolveSibling(LIB_NAME);
            return Files.isRegularFile(candidate) ? candidate : null;
        } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
            return null;
        }
    }

    /** The packaged shims for this platform, in the order the native jars appear on the class path. */
    private static List<ShimInfo> packagedShims() {
        List<ShimInfo> found = new ArrayList<>();
        try {
            ClassLoader loader = NativeLibrary.class.getClassLoader();
            for (URL index : Collections.list(loader.getResources(NATIVE_INDEX))) {
                try (InputStream in = index.openStream()) {
                    String classifier = new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
                    if (!classifier.startsWith(platform() + "-")) continue;
                    try (InputStream meta = loader.getResourceAsStream(RESOURCE_DIR + classifier + "/" + ShimInfo.FILE_NAME)) {
                        // The folder's name (the jar's classifier) is where the shim is, whatever the metadata says.
                        if (meta != null) found.add(ShimInfo.read(meta, classifier).inFolder(classifier));
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read lora4j's native artifacts (" + NATIVE_INDEX + ")", e);
        }
        return found;
    }

    private static Path extractPackaged() {
        List<ShimInfo> candidates = packagedShims();
        if (candidates.isEmpty()) {
            throw new UnsatisfiedLinkError("lora4j's native library is missing: add the dependency"
                    + " dev.lora4j:lora4j-native with the classifier " + platform() + "-libtorch<LINE> for your"
                    + " LibTorch (e.g. " + platform() + "-libtorch2.6), or build the shim (scripts/setup.sh)"
                    + " and set -Dlora4j.shim=FILE");
        }
        ShimInfo chosen = candidates.stream().filter(c -> LibTorchCheck.present(c.probeLibrary()))
                .findFirst().orElseThrow(() -> LibTorchCheck.refuse("the native artifacts", candidates));
        String resource = RESOURCE_DIR + chosen.classifier() + "/" + LIB_NAME;
        byte[] bytes;
        try (InputStream in = NativeLibrary.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) throw new UnsatisfiedLinkError("lora4j's native artifact has no " + resource);
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + resource, e);
        }
        shimInfo = chosen;
        return SecureExtraction.extract(bytes, LIB_NAME);
    }

    static String platform() {
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String osPart = os.contains("linux") ? "linux" : os.replaceAll("\\s+", "");
        String archPart = switch (arch) {
            case "amd64", "x86_64" -> "x86-64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return osPart + "-" + archPart.replace("x86-64", "x86_64");
    }
}
