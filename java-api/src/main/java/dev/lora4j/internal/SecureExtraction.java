package dev.lora4j.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Set;

/**
 * Writes a packaged native library to disk so that it can be loaded, without letting another
 * local user choose what gets loaded.
 *
 * <ul>
 *   <li>The library goes into a per-user folder, {@code java.io.tmpdir/lora4j-USER}, which must be a
 *       real directory (not a link) owned by this user with permissions {@code rwx------}; it is
 *       created so. A folder that fails the check is left alone and a fresh private temporary
 *       folder (deleted at exit) is used instead.
 *   <li>The file is named after the SHA-256 of the content, and its content is hashed again
 *       before every load: a file that does not hash to the packaged bytes is replaced (written to
 *       a private temporary file, then atomically moved), never loaded.
 * </ul>
 *
 * <p>Thread-safe (no state); concurrent JVMs race only on an atomic move of identical content.
 */
final class SecureExtraction {

    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

    private SecureExtraction() {}

    /** The file holding {@code bytes}, extracted (or reused once its hash is verified) under a private folder. */
    static Path extract(byte[] bytes, String fileName) {
        String hash = sha256(bytes);
        try {
            Path dir = privateDirectory();
            String stem = fileName.endsWith(".so") ? fileName.substring(0, fileName.length() - 3) : fileName;
            Path target = dir.resolve(stem + "-" + hash.substring(0, 16) + ".so");
            if (Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS) && hash.equals(sha256(target))) return target;
            Path tmp = Files.createTempFile(dir, stem, ".part", PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rw-------")));
            try {
                Files.write(tmp, bytes, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.SYNC);
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
            if (!hash.equals(sha256(target))) {
                throw new IOException(target + " changed while it was extracted");
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot extract " + fileName + " into java.io.tmpdir ("
                    + System.getProperty("java.io.tmpdir") + "); set -Dlora4j.shim=FILE to a " + fileName
                    + " on a writable folder, or -Djava.io.tmpdir to another folder", e);
        }
    }

    /** java.io.tmpdir/lora4j-USER when it is safe (created when missing), else a fresh private folder. */
    static Path privateDirectory() throws IOException {
        if (!FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            throw new IOException("the file system has no POSIX permissions");
        }
        String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
        Path dir = Path.of(System.getProperty("java.io.tmpdir"), "lora4j-" + user).toAbsolutePath();
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
            Files.setPosixFilePermissions(dir, OWNER_ONLY); // the umask may have removed bits; never adds
        } catch (java.nio.file.FileAlreadyExistsException e) {
            // checked below
        }
        if (isPrivate(dir)) return dir;
        Path fresh = Files.createTempDirectory("lora4j-", PosixFilePermissions.asFileAttribute(OWNER_ONLY));
        fresh.toFile().deleteOnExit();
        return fresh;
    }

    /** A real directory, owned by this process's user, that nobody else may read, write or enter. */
    static boolean isPrivate(Path dir) throws IOException {
        PosixFileAttributes attrs = Files.getFileAttributeView(dir, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
                .readAttributes();
        if (!attrs.isDirectory() || attrs.isSymbolicLink()) return false;
        if (!attrs.permissions().equals(OWNER_ONLY)) return false;
        return attrs.owner().equals(currentUser());
    }

    private static UserPrincipal currentUser() throws IOException {
        // The owner of a file this process creates is this process's user (uid), whatever user.name says.
        Path probe = Files.createTempFile("lora4j-owner", ".tmp");
        try {
            return Files.getOwner(probe);
        } finally {
            Files.delete(probe);
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String sha256(Path file) throws IOException {
        return sha256(Files.readAllBytes(file));
    }
}
