package dev.lora4j.examples.serve;

import dev.lora4j.io.PeftAdapter;
import dev.lora4j.lora.Lora;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SecureDirectoryStream;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.BasicFileAttributeView;
import java.util.Comparator;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The adapters root: the one folder the service may load adapters from. Adapter names and
 * the relative folder paths a client gives are checked here, so that no request can make the
 * service read outside the root: no absolute paths, no {@code ..}, no symbolic link leading
 * out, neither as a folder nor as a file inside one. {@link #snapshot} copies an adapter's two
 * files into a private folder, walking from the root with every link refused ({@code openat}
 * with {@code O_NOFOLLOW} through a {@link SecureDirectoryStream}), so a link swapped in after
 * the check cannot redirect the read either; the library then loads the copy.
 */
final class AdapterFolders {

    /**
     * Adapter names: 1 to 64 letters, digits, '_' or '-', starting with a letter or digit. No
     * '.': every name accepted here is one the library accepts ({@link Lora#isValidAdapterName}).
     */
    static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]{0,63}");

    /** The largest adapter file copied (a weights file of 2 GiB is far beyond any adapter of a servable model). */
    static final long MAX_FILE_BYTES = 2L << 30;

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
        if (name == null || !NAME.matcher(name).matches() || !Lora.isValidAdapterName(name)) {
            throw ApiError.badRequest("adapter names are 1 to 64 characters of [A-Za-z0-9_-] starting with a letter or digit, got '"
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

    /**
     * Copies the adapter files of {@code folder} (a folder {@link #resolve} returned) into a new
     * private folder and returns it; the caller deletes it with {@link #deleteSnapshot}. Every
     * path component from the root down and both files are opened without following links.
     *
     * @throws ApiError 422 when a component or file is a link, not a regular file, missing or too large
     */
    Path snapshot(Path folder) {
        Path relative = root.relativize(folder);
        String shown = relative.toString().isEmpty() ? "." : clip(relative.toString());
        Path copy = null;
        try {
            copy = Files.createTempDirectory("lora4j-adapter");
            DirectoryStream<Path> top = Files.newDirectoryStream(root);
            if (!(top instanceof SecureDirectoryStream<Path> dir)) {
                top.close();
                throw new IOException("this platform has no SecureDirectoryStream");
            }
            try {
                for (Path part : relative) {
                    if (part.toString().isEmpty()) continue;
                    SecureDirectoryStream<Path> next = dir.newDirectoryStream(part.getFileName(), LinkOption.NOFOLLOW_LINKS);
                    dir.close();
                    dir = next;
                }
                for (String name : new String[] {PeftAdapter.CONFIG, PeftAdapter.WEIGHTS}) copyFile(dir, Path.of(name), copy.resolve(name), shown);
            } finally {
                dir.close();
            }
            return copy;
        } catch (IOException e) {
            deleteSnapshot(copy);
            // The message names the folder and file only: never what a file holds.
            throw ApiError.unprocessable("adapter folder '" + shown + "' cannot be read safely: "
                    + (e instanceof UnsafeFile ? e.getMessage() : e.getClass().getSimpleName()));
        } catch (RuntimeException e) {
            deleteSnapshot(copy);
            throw e;
        }
    }

    /** A refusal whose message is ours (names only), so it may be shown. */
    private static final class UnsafeFile extends IOException {
        private static final long serialVersionUID = 1L;

        UnsafeFile(String message) {
            super(message);
        }
    }

    private static void copyFile(SecureDirectoryStream<Path> dir, Path name, Path target, String shown) throws IOException {
        BasicFileAttributes attrs;
        try {
            attrs = dir.getFileAttributeView(name, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS).readAttributes();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new UnsafeFile(name + " is missing");
        }
        if (attrs.isSymbolicLink()) throw new UnsafeFile(name + " is a symbolic link");
        if (!attrs.isRegularFile()) throw new UnsafeFile(name + " is not a regular file");
        if (attrs.size() > MAX_FILE_BYTES) throw new UnsafeFile(name + " is larger than " + MAX_FILE_BYTES + " bytes");
        try (SeekableByteChannel ch = dir.newByteChannel(name, Set.of(StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS));
             InputStream in = Channels.newInputStream(ch)) {
            long copied = Files.copy(new BoundedInput(in, MAX_FILE_BYTES), target);
            if (copied > MAX_FILE_BYTES) throw new UnsafeFile(name + " is larger than " + MAX_FILE_BYTES + " bytes");
        } catch (java.nio.file.FileSystemException e) {
            if (e.getMessage() != null && e.getMessage().contains("symbolic link")) throw new UnsafeFile(name + " is a symbolic link");
            throw new UnsafeFile(name + " cannot be opened");
        }
    }

    /** Reads at most {@code limit} + 1 bytes, so a file that grows while copied is caught. */
    private static final class BoundedInput extends java.io.FilterInputStream {
        private long left;

        BoundedInput(InputStream in, long limit) {
            super(in);
            left = limit + 1;
        }

        @Override
        public int read() throws IOException {
            if (left <= 0) return -1;
            int b = super.read();
            if (b >= 0) left--;
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (left <= 0) return -1;
            int n = super.read(b, off, (int) Math.min(len, left));
            if (n > 0) left -= n;
            return n;
        }
    }

    /** Deletes a folder {@link #snapshot} made (null: nothing). */
    static void deleteSnapshot(Path copy) {
        if (copy == null) return;
        try (var walk = Files.walk(copy)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort: a temporary folder
                }
            });
        } catch (IOException e) {
            // best effort
        }
    }

    /** A client's string cut to a length fit for an error message. */
    static String clip(String s) {
        if (s == null) return "null";
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }
}
