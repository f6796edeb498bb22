package dev.lora4j.io;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The child-JVM part of {@link SafetensorsChangeTest}: one thread rewrites a safetensors file in
 * place over and over, as {@code cp new old} does (truncate, then write; here only the tail, so
 * the file is whole most of the time), alternating between two versions whose tails differ,
 * while this thread reads it. Every read must give one version's tensor whole or an
 * {@link IOException}, never a mix of the two (reading did, when the rewrite kept the size) and
 * never a dead JVM (it died with SIGBUS when reading copied from a mapping of the file). Prints
 * "reads ok ..." and exits 0, or exits 1 with the problem.
 *
 * <p>Arguments: seconds.
 */
public final class SafetensorsTruncation {

    private SafetensorsTruncation() {}

    public static void main(String[] args) throws Exception {
        double seconds = Double.parseDouble(args[0]);
        Torch.setNumThreads(1);
        Path dir = Files.createTempDirectory("lora4j-truncation");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> dev.lora4j.testing.ChildJvm.deleteTree(dir)));
        Path file = dir.resolve("adapter_model.safetensors");
        // 64 tensors, so a read takes many steps and a rewrite between two of them gives a mix if it goes unseen.
        Map<String, Tensor> a = new java.util.LinkedHashMap<>();
        for (int i = 0; i < 64; i++) a.put("w" + i, Tensor.arange(i << 14, (i + 1) << 14, 1, dev.lora4j.DType.FLOAT32));
        Safetensors.write(file, a);
        byte[] bytes = Files.readAllBytes(file);
        int half = bytes.length / 2;
        byte[] other = bytes.clone(); // the same file with the tail changed: each float's lowest mantissa byte
        for (int i = half / 4 * 4; i < other.length; i += 4) other[i] ^= 1;
        Path otherFile = dir.resolve("other.safetensors");
        Files.write(otherFile, other);
        Map<String, Tensor> b = new java.util.LinkedHashMap<>();
        try (Safetensors.Contents c = Safetensors.read(otherFile)) {
            c.tensors().forEach((k, v) -> b.put(k, v.clone()));
        }
        if (b.get("w63").equal(a.get("w63"))) throw new AssertionError("the two versions must differ");
        byte[][] versions = {bytes, other};
        AtomicBoolean stop = new AtomicBoolean();
        Thread writer = Thread.ofPlatform().start(() -> {
            // Cut the tail off and write the other version's back, so the file is whole most of the time and a read often meets the cut.
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                for (int i = 1; !stop.get(); i++) {
                    ch.truncate(half);
                    byte[] v = versions[i % 2];
                    ByteBuffer buf = ByteBuffer.wrap(v, half, v.length - half);
                    long pos = half;
                    while (buf.hasRemaining()) pos += ch.write(buf, pos);
                    Thread.sleep(0, 300_000);
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        long end = System.nanoTime() + (long) (seconds * 1e9);
        int whole = 0;
        int refused = 0;
        try {
            while (System.nanoTime() < end) {
                try (Safetensors.Contents c = Safetensors.read(file)) {
                    if (!same(c.tensors(), a) && !same(c.tensors(), b)) {
                        System.out.println("a read gave a tensor that is not the file's (a mix of two versions)");
                        System.exit(1);
                    }
                    whole++;
                } catch (IOException e) {
                    refused++;
                }
            }
        } finally {
            stop.set(true);
            writer.join();
        }
        System.out.println("reads ok: " + whole + " whole, " + refused + " refused with IOException");
        System.exit(0);
    }

    private static boolean same(Map<String, Tensor> read, Map<String, Tensor> version) {
        if (!read.keySet().equals(version.keySet())) return false;
        for (var e : version.entrySet()) {
            if (!read.get(e.getKey()).equal(e.getValue())) return false;
        }
        return true;
    }
}
