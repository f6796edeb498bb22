package dev.lora4j.io;

import dev.lora4j.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A config file and a safetensors weights file in one folder, written and read as a pair so that
 * a reader never gets the weights of one save with the config of another: a PEFT adapter folder
 * ({@code adapter_config.json} + {@code adapter_model.safetensors}) or a Hugging Face checkpoint
 * ({@code config.json} + {@code model.safetensors}).
 *
 * <p><b>Writing</b>: the weights file is written first, with the SHA-256 of the config's bytes in
 * its safetensors metadata ({@value #CONFIG_DIGEST}; PEFT and Hugging Face ignore metadata they do
 * not know), then the config; each file goes to a temporary name of its own in the folder and is
 * renamed over its final name (atomic on POSIX file systems), so each file is always whole and
 * concurrent saves never share a temporary file. Saves of one folder within a JVM are
 * serialized. Files and the folder get the process's default permissions (its umask), as
 * Python's {@code open} gives them, not owner-only.
 *
 * <p><b>Reading</b>: the config, then the weights; when the weights carry a digest that is not
 * the config's, a save ran in between: both are read again (a few times, briefly), else the
 * folder is refused. Since the new weights are in place before the new config, a reader that
 * got the new config gets the new (or a later) weights file; one that got the old config and
 * the new weights sees the digest differ. Files written by other tools carry no digest and are
 * read as they are.
 *
 * <p>Stateless apart from the per-folder write locks; thread-safe.
 */
public final class PairedFiles {

    /** The safetensors metadata key holding the SHA-256 (hex) of the config file's bytes. */
    public static final String CONFIG_DIGEST = "lora4j_adapter_config_sha256";
    /** Largest config file read (a PEFT config is a few kilobytes). */
    static final long MAX_CONFIG_BYTES = 16L << 20;
    private static final int READ_ATTEMPTS = 30;
    private static final Map<Path, Object> WRITE_LOCKS = new ConcurrentHashMap<>();

    private PairedFiles() {}

    /** Config bytes and the weights that belong with them; close to free the tensors (they belong to the caller). */
    public record Snapshot(byte[] config, Safetensors.Contents weights) implements AutoCloseable {
        @Override
        public void close() {
            weights.close();
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Reads a consistent pair of files from {@code dir}.
     *
     * @throws IOException when a file is missing, unreadable or malformed, or when the pair stays
     *     inconsistent over several reads (the folder is being rewritten or was mixed by hand)
     */
    public static Snapshot read(Path dir, String configName, String weightsName) throws IOException {
        Path configFile = dir.resolve(configName);
        Path weightsFile = dir.resolve(weightsName);
        if (!Files.isRegularFile(configFile)) throw new IOException(dir + " has no " + configName);
        if (!Files.isRegularFile(weightsFile)) throw new IOException(dir + " has no " + weightsName);
        for (int attempt = 0; ; attempt++) {
            byte[] config = readConfig(configFile);
            Safetensors.Contents weights = Safetensors.read(weightsFile);
            String digest = weights.metadata().get(CONFIG_DIGEST);
            if (digest == null || digest.equals(sha256(config))) return new Snapshot(config, weights);
            weights.close();
            if (attempt + 1 >= READ_ATTEMPTS) {
                throw new IOException(dir + ": " + weightsName + " was not saved with this " + configName
                        + " (its digest differs after " + READ_ATTEMPTS + " reads): the folder is being rewritten or was mixed by hand");
            }
            try {
                Thread.sleep(Math.min(20, 1 + attempt));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while reading " + dir, e);
            }
        }
    }

    private static byte[] readConfig(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] bytes = in.readNBytes((int) MAX_CONFIG_BYTES + 1);
            if (bytes.length > MAX_CONFIG_BYTES) throw new IOException(file + " is larger than " + MAX_CONFIG_BYTES + " bytes");
            return bytes;
        }
    }

    /**
     * Writes {@code tensors} (metadata {@code format: pt} plus the config's digest) and then
     * {@code config} into {@code dir}, each atomically, with the process's default permissions.
     * The tensors stay the caller's.
     */
    public static void write(Path dir, String configName, byte[] config, String weightsName, Map<String, Tensor> tensors) throws IOException {
        Files.createDirectories(dir);
        Path real = dir.toRealPath();
        synchronized (WRITE_LOCKS.computeIfAbsent(real, p -> new Object())) {
            Map<String, String> metadata = new LinkedHashMap<>();
            metadata.put("format", "pt");
            metadata.put(CONFIG_DIGEST, sha256(config));
            Path configTmp = real.resolve(".pf-" + UUID.randomUUID() + ".tmp"); // short: the files' own names may be 255 bytes
            Path weightsTmp = real.resolve(".pf-" + UUID.randomUUID() + ".tmp");
            try {
                Files.createFile(configTmp); // default permissions: 0666 less the umask
                Set<PosixFilePermission> perms = posixPermissions(configTmp);
                Files.write(configTmp, config);
                Safetensors.write(weightsTmp, tensors, metadata);
                if (perms != null) Files.setPosixFilePermissions(weightsTmp, perms);
                force(configTmp);
                Files.move(weightsTmp, real.resolve(weightsName), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                Files.move(configTmp, real.resolve(configName), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(configTmp);
                Files.deleteIfExists(weightsTmp);
            }
        }
    }

    private static Set<PosixFilePermission> posixPermissions(Path p) throws IOException {
        try {
            return Files.getPosixFilePermissions(p);
        } catch (UnsupportedOperationException e) {
            return null;
        }
    }

    private static void force(Path p) throws IOException {
        try (var ch = java.nio.channels.FileChannel.open(p, java.nio.file.StandardOpenOption.WRITE)) {
            ch.force(true);
        } catch (NoSuchFileException e) {
            throw e;
        } catch (FileSystemException e) {
            // some file systems cannot sync; the rename still publishes a whole file
        }
    }
}
