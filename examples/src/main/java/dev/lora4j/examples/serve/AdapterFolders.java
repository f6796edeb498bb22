package dev.lora4j.examples.serve;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * The adapters root: the one folder the service may load adapters from. Adapter names and
 * the relative folder paths a client gives are checked here, so that no request can make the
 * service read outside the root (no absolute paths, no {@code ..}, no symbolic link leading
 * out).
 */
final class AdapterFolders {

    /** Adapter names: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit. */
    static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    private final Path root;

    /** The root must exist; it is resolved to its real path once. */
    AdapterFolders(Path root) throws IOException {
        if (!Files.isDirectory(root)) throw new IOException("the adapters root " + root + " is not a directory");
        this.root = root.toRealPath();
    }

    Path root() {
        return root;
    }

    /** Checks an adapter name (404 for a name that cannot exist is unhelpful: 400). */
    static String checkName(String name) {
        if (name == null || !NAME.matcher(name).matches()) {
            throw ApiError.badRequest("adapter names are 1 to 64 characters of [A-Za-z0-9._-] starting with a letter or digit, got '"
                    + clip(name) + "'");
        }
        return name;
    }

    /**
     * The folder {@code relative} (a path relative to the root, '/'-separated) names, checked
     * to stay inside the root after symbolic links are followed.
     *
     * @throws ApiError 400 for an absolute path or one with {@code ..}, 404 for a folder that
     *     does not exist
     */
    Path resolve(String relative) {
        if (relative == null || relative.isEmpty() || relative.length() > 512) {
            throw ApiError.badRequest("path must be a non-empty folder path relative to the adapters root (at most 512 characters)");
        }
        if (relative.startsWith("/") || relative.contains("\\") || relative.indexOf('\0') >= 0) {
            throw ApiError.badRequest("path must be relative to the adapters root, got '" + clip(relative) + "'");
        }
        for (String part : relative.split("/")) {
            if (part.equals("..")) throw ApiError.badRequest("path must not contain '..', got '" + clip(relative) + "'");
        }
        Path p = root.resolve(relative).normalize();
        if (!p.startsWith(root)) throw ApiError.badRequest("path leaves the adapters root: '" + clip(relative) + "'");
        if (!Files.isDirectory(p)) throw ApiError.notFound("no adapter folder '" + clip(relative) + "' under the adapters root");
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException e) {
            throw ApiError.notFound("adapter folder '" + clip(relative) + "' cannot be read");
        }
        if (!real.startsWith(root)) throw ApiError.badRequest("path leads out of the adapters root through a link: '" + clip(relative) + "'");
        return real;
    }

    /** A client's string cut to a length fit for an error message. */
    static String clip(String s) {
        if (s == null) return "null";
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }
}
