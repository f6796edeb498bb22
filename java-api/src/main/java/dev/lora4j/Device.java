package dev.lora4j;

import java.util.Objects;

/**
 * Where a tensor lives: the CPU or a CUDA device, as in PyTorch ({@code "cpu"}, {@code "cuda:0"}).
 * Immutable. Naming a device does not check that it exists; {@link Torch#device(String)} does.
 *
 * @param type the device kind
 * @param index the device number for CUDA (-1 means the current device); -1 for the CPU
 *
 * <p>Immutable and thread-safe.
 */
public record Device(Type type, int index) {

    /** Device kinds. */
    public enum Type { CPU, CUDA }

    /** The CPU. */
    public static final Device CPU = new Device(Type.CPU, -1);

    public Device {
        Objects.requireNonNull(type, "type");
        // LibTorch keeps a device index in 8 bits (c10::DeviceIndex): a larger one would wrap.
        if (index < -1 || index > Byte.MAX_VALUE) {
            throw new IllegalArgumentException("device index must be in -1.." + Byte.MAX_VALUE + ", got " + index);
        }
        if (type == Type.CPU && index > 0) throw new IllegalArgumentException("the CPU has no index " + index);
    }

    /** CUDA device {@code index}. */
    public static Device cuda(int index) {
        return new Device(Type.CUDA, index);
    }

    /** Parses PyTorch's spelling: {@code "cpu"}, {@code "cuda"}, {@code "cuda:1"}. */
    public static Device parse(String spec) {
        Objects.requireNonNull(spec, "spec");
        String s = spec.trim();
        if (s.equals("cpu")) return CPU;
        if (s.equals("cuda")) return new Device(Type.CUDA, -1);
        if (s.startsWith("cuda:")) {
            try {
                return cuda(Integer.parseInt(s.substring(5)));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("bad device index in '" + spec + "'");
            }
        }
        throw new IllegalArgumentException("unknown device '" + spec + "' (expected cpu, cuda or cuda:N)");
    }

    @Override
    public String toString() {
        return type == Type.CPU ? "cpu" : index < 0 ? "cuda" : "cuda:" + index;
    }
}
