package dev.lora4j.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

/**
 * What a {@code liblora4j.so} was built for, as written beside it by CMake
 * ({@code liblora4j.properties}, see {@code native-shim/cmake/shim-properties.cmake}).
 *
 * @param libtorchVersion the LibTorch version compiled against, e.g. {@code 2.6.0}
 * @param libtorchLine    its major.minor, e.g. {@code 2.6}
 * @param classifier      the native artifact's classifier, e.g. {@code linux-x86_64-libtorch2.6}
 * @param needed          the LibTorch libraries the shim links ({@code DT_NEEDED}), libc10 first
 */
record ShimInfo(String libtorchVersion, String libtorchLine, String classifier, List<String> needed) {

    static final String FILE_NAME = "liblora4j.properties";

    /** Reads the metadata beside {@code shim}, or returns null when there is none. */
    static ShimInfo besideShim(Path shim) {
        Path file = shim.resolveSibling(FILE_NAME);
        if (!Files.isRegularFile(file)) return null;
        try (Reader in = Files.newBufferedReader(file)) {
            return parse(in, file.toString());
        } catch (IOException e) {
            return null;
        }
    }

    static ShimInfo read(InputStream in, String where) throws IOException {
        return parse(new StringReader(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)), where);
    }

    private static ShimInfo parse(Reader in, String where) throws IOException {
        Properties p = new Properties();
        p.load(in);
        String version = p.getProperty("libtorch.version", "");
        String line = p.getProperty("libtorch.line", "");
        if (version.isBlank() || line.isBlank()) {
            throw new IOException(where + " names no libtorch.version / libtorch.line");
        }
        List<String> needed = Arrays.stream(p.getProperty("needed", "").split(","))
                .map(String::strip).filter(s -> !s.isEmpty()).toList();
        return new ShimInfo(version, line, p.getProperty("classifier", ""), needed);
    }

    /** The same metadata, for the shim packaged in the folder named {@code classifier}. */
    ShimInfo inFolder(String classifier) {
        return new ShimInfo(libtorchVersion, libtorchLine, classifier, needed);
    }

    /** The libc10 library the shim needs (the cheapest probe of which LibTorch is present), or null. */
    String probeLibrary() {
        return needed.stream().filter(n -> n.startsWith("libc10")).findFirst()
                .orElse(needed.isEmpty() ? null : needed.getFirst());
    }
}
