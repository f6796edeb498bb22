package dev.lora4j.io;

import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The child-JVM part of {@link SafetensorsChangeTest}: one thread rewrites a safetensors file in
 * place over and over, as {@code cp new old} does (truncate, then write; here only the tail, so
 * the file is whole most of the time), alternating between two versions whose tails differ,
 * while this thread reads it. Every read must give one version's tensor whole or an
 * {@link java.io.IOException}, never a mix of the two (reading did, when the rewrite kept the size) and
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
        try {
            InPlaceRewrites.Counts counts = InPlaceRewrites.run(file, versions, half, seconds, () -> {
                try (Safetensors.Contents c = Safetensors.read(file)) {
                    return same(c.tensors(), a) || same(c.tensors(), b);
                }
            });
            System.out.println("reads ok: " + counts.whole() + " whole, " + counts.refused() + " refused with IOException");
            System.exit(0);
        } catch (AssertionError e) {
            System.out.println(e.getMessage());
            System.exit(1);
        }
    }

    private static boolean same(Map<String, Tensor> read, Map<String, Tensor> version) {
        if (!read.keySet().equals(version.keySet())) return false;
        for (var e : version.entrySet()) {
            if (!read.get(e.getKey()).equal(e.getValue())) return false;
        }
        return true;
    }
}
