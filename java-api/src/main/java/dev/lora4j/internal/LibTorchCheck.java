package dev.lora4j.internal;

import dev.lora4j.LibTorchMismatchError;
import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Tells whether the LibTorch a shim needs is present, and words the refusal when it is not.
 *
 * <p>Presence is asked of the dynamic linker itself (the shim's {@code libc10} is opened by name,
 * as the shim's own load would); what LibTorch <em>is</em> installed is read from the names of
 * the {@code libc10.so.*} files in the linker's usual folders, for the message only.
 *
 * <p>Thread-safe (no state).
 */
final class LibTorchCheck {

    private static final Pattern LINE = Pattern.compile("libc10\\.so\\.(\\d+\\.\\d+)");

    private LibTorchCheck() {}

    /** Whether the dynamic linker can open {@code soname} (null: nothing to check). */
    static boolean present(String soname) {
        if (soname == null) return true;
        try {
            SymbolLookup.libraryLookup(soname, Arena.global());
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    /** The refusal of a shim (or of every packaged shim) whose LibTorch is absent. */
    static LibTorchMismatchError refuse(String where, List<ShimInfo> candidates) {
        String needs = candidates.stream()
                .map(c -> "LibTorch " + c.libtorchLine() + " (" + c.probeLibrary() + ")")
                .collect(Collectors.joining(" or "));
        return new LibTorchMismatchError("lora4j's native shim from " + where + " was built for " + needs
                + ", but " + found() + ". " + fix(candidates));
    }

    /** Turns a failed load of the shim into an explanation when LibTorch is the cause. */
    static UnsatisfiedLinkError explain(Path shim, ShimInfo info, UnsatisfiedLinkError e) {
        String msg = String.valueOf(e.getMessage());
        String builtFor = info == null ? "an unknown LibTorch (no " + ShimInfo.FILE_NAME + " beside it)"
                : "LibTorch " + info.libtorchVersion();
        if (msg.contains("failed to map segment") || msg.contains("Operation not permitted")) {
            UnsatisfiedLinkError noexec = new UnsatisfiedLinkError("cannot load " + shim + ": its folder is on a"
                    + " file system mounted noexec (java.io.tmpdir is " + System.getProperty("java.io.tmpdir")
                    + "). Copy liblora4j.so to a folder that allows execution and point -Dlora4j.shim=FILE at it,"
                    + " or set -Djava.io.tmpdir=DIR to such a folder (" + msg + ")");
            noexec.initCause(e);
            return noexec;
        }
        if (msg.contains("libtorch") || msg.contains("libc10") || msg.contains("undefined symbol")) {
            LibTorchMismatchError mismatch = new LibTorchMismatchError("lora4j's native shim " + shim
                    + " was built for " + builtFor + " and does not load on the LibTorch present (" + found()
                    + "): " + msg + ". " + fix(info == null ? List.of() : List.of(info)));
            mismatch.initCause(e);
            return mismatch;
        }
        return e;
    }

    private static String fix(List<ShimInfo> candidates) {
        String version = NativeLibrary.class.getPackage().getImplementationVersion();
        String line = foundLine();
        String artifact = "dev.lora4j:lora4j-native:" + (version == null ? "<version>" : version) + ":"
                + NativeLibrary.platform() + "-libtorch" + (line == null ? "<your LibTorch's major.minor>" : line);
        return "To fix: depend on " + artifact + " (the shim for the LibTorch you have), or install the LibTorch"
                + " the shim was built for" + (candidates.isEmpty() ? "" : " (Debian: libtorch-dev " + candidates.getFirst().libtorchLine() + ")")
                + ", or build the shim against your LibTorch (cmake -S . -B build -DTorch_DIR=<libtorch>/share/cmake/Torch"
                + " && cmake --build build) and run with -Dlora4j.shim=build/native/liblora4j.so;"
                + " -Dlora4j.libtorch=DIR loads LibTorch from DIR";
    }

    /** The LibTorch line installed (from libc10.so.X.Y's name), or null. */
    private static String foundLine() {
        for (Path p : libc10Files()) {
            Matcher m = LINE.matcher(p.getFileName().toString());
            if (m.matches()) return m.group(1);
        }
        return null;
    }

    private static String found() {
        List<Path> files = libc10Files();
        if (files.isEmpty()) return "no LibTorch was found (no libc10.so* in " + String.join(", ", searchFolders()) + ")";
        return "the LibTorch found is " + files.stream().map(Path::toString).collect(Collectors.joining(", "));
    }

    private static List<Path> libc10Files() {
        List<Path> out = new ArrayList<>();
        for (String dir : searchFolders()) {
            try (Stream<Path> files = Files.list(Path.of(dir))) {
                files.filter(f -> f.getFileName().toString().startsWith("libc10.so")).sorted().forEach(out::add);
            } catch (IOException | RuntimeException e) {
                // not a folder here
            }
        }
        return out;
    }

    private static Set<String> searchFolders() {
        Set<String> dirs = new LinkedHashSet<>();
        String libtorch = System.getProperty("lora4j.libtorch");
        if (libtorch != null && !libtorch.isBlank()) dirs.add(libtorch);
        String ld = System.getenv("LD_LIBRARY_PATH");
        if (ld != null) for (String d : ld.split(File.pathSeparator)) if (!d.isBlank()) dirs.add(d);
        String arch = System.getProperty("os.arch", "");
        dirs.add("/usr/lib/" + (arch.equals("amd64") ? "x86_64" : arch) + "-linux-gnu");
        dirs.addAll(List.of("/usr/local/lib", "/usr/lib64", "/usr/lib"));
        return dirs;
    }
}
