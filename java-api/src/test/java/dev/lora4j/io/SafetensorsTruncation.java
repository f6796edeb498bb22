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
 * the file is whole most of the time), while this thread reads
 * it. Every read must give the file's tensor whole or an {@link IOException}; the JVM must not
 * die (it did, with SIGBUS, when reading copied from a mapping of the file). Prints "reads ok
 * ..." and exits 0, or exits 1 with the problem.
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
        Tensor t = Tensor.arange(4L << 20).to(dev.lora4j.DType.FLOAT32); // 16 MiB of data
        Safetensors.write(file, Map.of("w", t));
        byte[] bytes = Files.readAllBytes(file);
        AtomicBoolean stop = new AtomicBoolean();
        Thread writer = Thread.ofPlatform().start(() -> {
            // Cut the tail off and write it back, so the file is whole most of the time and a read often meets the cut.
            int half = bytes.length / 2;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                while (!stop.get()) {
                    ch.truncate(half);
                    ByteBuffer b = ByteBuffer.wrap(bytes, half, bytes.length - half);
                    long pos = half;
                    while (b.hasRemaining()) pos += ch.write(b, pos);
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
                    if (!c.tensors().get("w").equal(t)) {
                        System.out.println("a read gave a tensor that is not the file's");
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
}
