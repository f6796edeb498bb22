package dev.lora4j.distributed;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two ranks as two hosts: each rank runs in its own network namespace (its own interfaces,
 * addresses and loopback), joined only by a veth pair with addresses this test creates
 * (10.213.x.1 and .2). Rank 1 reaches rank 0's store and Gloo endpoints over that link, as
 * across machines. The ranks check the collectives and train; the result must equal one
 * process's. Needs root and iproute2's {@code ip}; skipped with the reason otherwise. The
 * namespaces (and with them the veth pair) are deleted even when the test fails.
 */
class NetworkNamespaceTest {

    @Test
    @Timeout(600)
    void twoRanksInTwoNetworkNamespacesTrainOverAVethLink(@TempDir Path dir) throws Exception {
        assumeTrue("root".equals(System.getProperty("user.name")), "needs root to create network namespaces");
        String id = Long.toString(ProcessHandle.current().pid() % 100000);
        String nsA = "l4j" + id + "a", nsB = "l4j" + id + "b";
        String subnet = "10.213." + (ProcessHandle.current().pid() % 250 + 1) + ".";
        String addrA = subnet + "1", addrB = subnet + "2";
        List<String> created = new ArrayList<>();
        try {
            Result probe = ip("netns", "add", nsA);
            assumeTrue(probe.ok(), "cannot create a network namespace here: " + probe.output());
            created.add(nsA);
            // Entering one needs a mountable root (not so in a chroot such as scripts/trixie.sh's).
            Result enter = ip("-n", nsA, "link", "set", "lo", "up");
            assumeTrue(enter.ok(), "cannot enter a network namespace here: " + enter.output());
            must(ip("netns", "add", nsB));
            created.add(nsB);
            must(ip("link", "add", "veth" + id + "a", "type", "veth", "peer", "name", "veth" + id + "b"));
            must(ip("link", "set", "veth" + id + "a", "netns", nsA));
            must(ip("link", "set", "veth" + id + "b", "netns", nsB));
            must(ip("-n", nsA, "addr", "add", addrA + "/24", "dev", "veth" + id + "a"));
            must(ip("-n", nsB, "addr", "add", addrB + "/24", "dev", "veth" + id + "b"));
            for (String ns : List.of(nsA, nsB)) {
                must(ip("-n", ns, "link", "set", "lo", "up"));
                must(ip("-n", ns, "link", "set", "veth" + id + (ns.equals(nsA) ? "a" : "b"), "up"));
            }
            Path out = dir.resolve("weights.bin");
            int port = 29500 + (int) (ProcessHandle.current().pid() % 1000);
            String batch = "" + DataParallelDeterminismTest.BATCH, steps = "" + DataParallelDeterminismTest.STEPS;
            try (RankProcess r0 = RankProcess.start(List.of("ip", "netns", "exec", nsA), addrA, port, 2, 0, dir, "train", out.toString(), batch, steps);
                    RankProcess r1 = RankProcess.start(List.of("ip", "netns", "exec", nsB), addrA, port, 2, 1, dir, "train", out.toString(), batch, steps)) {
                assertEquals(0, r0.await(Duration.ofMinutes(5)), r0.log());
                assertEquals(0, r1.await(Duration.ofMinutes(1)), r1.log());
            }
            DataParallelDeterminismTest.assertMatchesOneProcess(TrainingJob.read(out));
        } finally {
            for (String ns : created) ip("netns", "del", ns); // deletes the veth pair with it
        }
    }

    record Result(int code, String output) {
        boolean ok() {
            return code == 0;
        }
    }

    private static void must(Result r) {
        assertTrue(r.ok(), "ip failed: " + r.output());
    }

    private static Result ip(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("ip"));
        cmd.addAll(List.of(args));
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            return new Result(-1, "cannot run ip (iproute2): " + e.getMessage());
        }
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, String.join(" ", cmd) + ": timed out");
        }
        return new Result(p.exitValue(), String.join(" ", cmd) + ": " + new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
    }
}
