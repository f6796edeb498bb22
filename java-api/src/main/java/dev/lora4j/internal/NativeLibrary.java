package dev.lora4j.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;

/**
 * Finds and loads {@code liblora4j.so} (and, when asked, LibTorch) once per class loader.
 *
 * <p>Search order for the shim: the system property {@code lora4j.shim} (a file), a
 * {@code liblora4j.so} next to the jar that holds this class, then the copy packaged in the
 * jar, extracted once into {@code java.io.tmpdir} under a name derived from its hash.
 *
 * <p>LibTorch is found by the system's dynamic linker (Debian's {@code libtorch-dev} puts it
 * on the default path) unless {@code -Dlora4j.libtorch=DIR} names a folder holding
 * {@code libc10.so}, {@code libtorch_cpu.so} and {@code libtorch.so}; those are then loaded
 * first, by absolute path.
 *
 * <p>Thread-safe: loading happens in the class initializer.
 */
public final class NativeLibrary {

    private static final String RESOURCE_DIR = "/dev/lora4j/native/";
    private static final String LIB_NAME = "liblora4j.so";

    static {
        load();
    }

    private NativeLibrary() {}

    /** Makes sure the native library is loaded; cheap after the first call. */
    public static void ensureLoaded() {
        // The static initializer did the work.
    }

    private static void load() {
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
        Path shim = locateShim();
        try {
            System.load(shim.toString());
        } catch (UnsatisfiedLinkError e) {
            String msg = String.valueOf(e.getMessage());
            if (msg.contains("libtorch") || msg.contains("libc10")) {
                throw new UnsatisfiedLinkError("LibTorch was not found while loading " + shim
                        + ": install it (Debian: apt-get install libtorch-dev) or point"
                        + " -Dlora4j.libtorch=DIR at the folder holding libtorch.so (" + msg + ")");
            }
            throw e;
        }
    }

    private static Path locateShim() {
        String explicit = System.getProperty("lora4j.shim");
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit).toAbsolutePath();
            if (!Files.isRegularFile(p)) {
                throw new UnsatisfiedLinkError("-Dlora4j.shim=" + explicit + " is not a file");
            }
            return p;
        }
        Path besideJar = besideJar();
        if (besideJar != null) return besideJar;
        return extractPackaged();
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

    private static Path extractPackaged() {
        String resource = RESOURCE_DIR + platform() + "/" + LIB_NAME;
        byte[] bytes;
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("lora4j's native library is not packaged for " + platform()
                        + " (no resource " + resource + "); build it with CMake and set -Dlora4j.shim=FILE");
            }
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + resource, e);
        }
        try {
            String hash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes), 0, 8);
            String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
            Path dir = Path.of(System.getProperty("java.io.tmpdir"), "lora4j-" + user + "-" + hash);
            Path target = dir.resolve(LIB_NAME);
            if (Files.isRegularFile(target) && Files.size(target) == bytes.length) return target;
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, LIB_NAME, ".part");
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot extract " + LIB_NAME + " into java.io.tmpdir", e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String platform() {
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
