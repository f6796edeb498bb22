package dev.lora4j.internal;

import dev.lora4j.testing.ChildJvm;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.lora4j.BuildInfo;
import dev.lora4j.Torch;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The shim reports what it was built for, and a shim built for another LibTorch is refused clearly. */
class LibTorchMismatchTest {

    /** Loads lora4j in a child JVM. */
    public static final class Load {
        public static void main(String[] args) {
            System.out.println(Torch.buildInfo());
        }
    }

    @Test
    void buildInfoMatchesTheLibTorchMappedIntoTheProcess() throws Exception {
        BuildInfo info = Torch.buildInfo();
        // Independent truth: the libc10 the dynamic linker mapped (Debian names it libc10.so.X.Y).
        Matcher m = Pattern.compile("libc10\\.so\\.(\\d+\\.\\d+)").matcher(Files.readString(Path.of("/proc/self/maps")));
        assumeTrue(m.find(), "this LibTorch's libc10 has no versioned name");
        assertEquals(m.group(1), info.libtorchLine(), info::toString);
        assertEquals(Torch.version(), info.libtorchVersion());
        assertEquals(NativeLibrary.shimLibTorchVersion(), info.libtorchVersion(), "liblora4j.properties vs the shim");
        assertEquals(info.libtorchLine().startsWith("1."), !info.fusedAttention(), info::toString);
        assertTrue(Files.isRegularFile(info.shim()), info::toString);
    }

    @Test
    void aShimForAnotherLibTorchIsRefusedWithWhatWasFoundAndTheFix(@TempDir Path dir) throws Exception {
        Path shim = dir.resolve("liblora4j.so");
        Files.copy(Torch.buildInfo().shim(), shim);
        Files.writeString(dir.resolve(ShimInfo.FILE_NAME), """
                libtorch.version=9.9.0
                libtorch.line=9.9
                platform=linux-x86_64
                classifier=linux-x86_64-libtorch9.9
                needed=libc10.so.9.9,libtorch.so.9.9,libtorch_cpu.so.9.9
                """);
        ChildJvm.Result r = ChildJvm.run(Load.class, List.of("-Dlora4j.shim=" + shim));
        assertNotEquals(0, r.exitCode(), r::toString);
        String out = r.output();
        assertTrue(out.contains("LibTorchMismatchError"), out);
        assertTrue(out.contains("built for LibTorch 9.9 (libc10.so.9.9)"), out);
        assertTrue(out.contains("the LibTorch found is") && out.contains("libc10.so." + Torch.buildInfo().libtorchLine()), out);
        assertTrue(out.contains("lora4j-native") && out.contains("libtorch" + Torch.buildInfo().libtorchLine()), out);
        assertFalse(out.contains("SIGSEGV") || out.contains("hs_err"), out);
    }

    /** CI's LibTorch 2.6 run points lora4j.test.foreignShim at the 1.13 build's shim (and the other way round). */
    @Test
    void theRealShimOfTheOtherLibTorchLineIsRefused() throws Exception {
        String foreign = System.getProperty("lora4j.test.foreignShim", "");
        assumeTrue(!foreign.isBlank() && Files.isRegularFile(Path.of(foreign)),
                "no shim of another LibTorch line given (-Dlora4j.test.foreignShim=FILE; .ci/run sets it)");
        ChildJvm.Result r = ChildJvm.run(Load.class, List.of("-Dlora4j.shim=" + foreign));
        assertNotEquals(0, r.exitCode(), r::toString);
        assertTrue(r.output().contains("LibTorchMismatchError") && r.output().contains("was built for LibTorch"), r::toString);
        assertTrue(r.output().contains("libtorch" + Torch.buildInfo().libtorchLine()), r::toString);
    }
}
