package dev.lora4j.distributed;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One rank as a child JVM running {@link RankMain} with this JVM's java, classpath and lora4j
 * settings, its output in a log file. Every wait is bounded; {@link #close()} kills a rank that
 * is still running.
 */
final class RankProcess implements AutoCloseable {

    private final Process process;
    private final Path log;

    private RankProcess(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /**
     * Starts rank {@code rank} of {@code world} meeting at {@code addr:port}, running
     * {@code RankMain args}; {@code prefix} is prepended to the command (e.g. {@code ip netns exec ns}).
     */
    static RankProcess start(List<String> prefix, String addr, int port, int world, int rank, Path dir, String... args) {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.add(ProcessHandle.current().info().command().orElseThrow());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("-Xms") || a.startsWith("-Xmx") || a.contains("AlwaysPreTouch") || a.startsWith("-agentlib")) continue;
            cmd.add(a);
        }
        cmd.addAll(List.of("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), RankMain.class.getName()));
        cmd.addAll(List.of(args));
        Path log = dir.resolve("rank" + rank + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("MASTER_ADDR", addr);
        env.put("MASTER_PORT", Integer.toString(port));
        env.put("WORLD_SIZE", Integer.toString(world));
        env.put("RANK", Integer.toString(rank));
        env.put("OMP_NUM_THREADS", "1");
        env.remove("GLOO_SOCKET_IFNAME");
        try {
            return new RankProcess(pb.start(), log);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The exit code, waiting at most {@code limit}; throws (after killing the rank) when it runs longer. */
    int await(Duration limit) throws InterruptedException {
        if (!process.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
            close();
            throw new AssertionError("rank still running after " + limit + ": killed. Log:\n" + log());
        }
        return process.exitValue();
    }

    String log() {
        try {
            return Files.exists(log) ? Files.readString(log) : "(no log)";
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A TCP port that was free a moment ago. */
    static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
