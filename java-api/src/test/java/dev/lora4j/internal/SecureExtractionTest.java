package dev.lora4j.internal;

import dev.lora4j.testing.ChildJvm;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 12: the packaged shim used to be extracted to a predictable path in java.io.tmpdir and
 * reused when a file there had the right size, so another local user could plant a library.
 * Each case runs a fresh JVM with its own java.io.tmpdir that extracts the packaged shim.
 */
class SecureExtractionTest {

    /** Loads lora4j in a child JVM (extracting the shim) and prints the shim's path. */
    public static final class Load {
        public static void main(String[] args) {
            System.out.println("shim=" + dev.lora4j.Torch.buildInfo().shim());
        }
    }

    private static ChildJvm.Result load(Path tmp) throws Exception {
        return ChildJvm.run(Load.class, List.of("-Djava.io.tmpdir=" + tmp));
    }

    private static Path shimOf(ChildJvm.Result r) {
        String line = r.output().lines().filter(l -> l.startsWith("shim=")).findFirst().orElseThrow(() -> new AssertionError(r));
        return Path.of(line.substring("shim=".length()));
    }

    @Test
    void aPlantedFileOfTheSameSizeIsReplacedNotLoaded(@TempDir Path tmp) throws Exception {
        ChildJvm.Result first = load(tmp);
        assertEquals(0, first.exitCode(), first::toString);
        Path shim = shimOf(first);
        assertTrue(shim.startsWith(tmp), "extracted under java.io.tmpdir: " + shim);
        byte[] good = Files.readAllBytes(shim);
        Files.write(shim, new byte[good.length]); // same size, other content
        ChildJvm.Result second = load(tmp);
        assertEquals(0, second.exitCode(), second::toString);
        assertArrayEquals(good, Files.readAllBytes(shimOf(second)), "the planted content was loaded");
    }

    @Test
    void theExtractionFolderIsPrivate(@TempDir Path tmp) throws Exception {
        ChildJvm.Result r = load(tmp);
        assertEquals(0, r.exitCode(), r::toString);
        Path dir = shimOf(r).getParent();
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(shimOf(r))));
    }

    @Test
    void aFolderOthersCanWriteIsNotUsed(@TempDir Path tmp) throws Exception {
        Path shared = tmp.resolve("lora4j-" + System.getProperty("user.name"));
        Files.createDirectory(shared);
        Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
        ChildJvm.Result r = load(tmp);
        assertEquals(0, r.exitCode(), r::toString);
        assertFalse(shimOf(r).startsWith(shared), "used a folder others can write: " + shimOf(r));
        try (Stream<Path> files = Files.list(shared)) {
            assertEquals(0, files.count(), "wrote into a folder others can write");
        }
    }

    @Test
    void aFolderOwnedByAnotherUserIsNotUsed(@TempDir Path tmp) throws Exception {
        assumeTrue("root".equals(System.getProperty("user.name")), "needs root to give a folder to another user");
        Path foreign = tmp.resolve("lora4j-root");
        Files.createDirectory(foreign);
        Files.setPosixFilePermissions(foreign, PosixFilePermissions.fromString("rwx------"));
        Files.setOwner(foreign, foreign.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody"));
        ChildJvm.Result r = load(tmp);
        assertEquals(0, r.exitCode(), r::toString);
        assertFalse(shimOf(r).startsWith(foreign), "used another user's folder: " + shimOf(r));
    }

    @Test
    void aNoexecFolderIsExplainedWithTheWayOut() throws IOException {
        UnsatisfiedLinkError e = LibTorchCheck.explain(Path.of("/tmp/lora4j-u/liblora4j-0.so"), null,
                new UnsatisfiedLinkError("/tmp/lora4j-u/liblora4j-0.so: failed to map segment from shared object"));
        assertTrue(e.getMessage().contains("noexec") && e.getMessage().contains("-Dlora4j.shim="), e.getMessage());
    }
}
