package dev.lora4j;

/**
 * Element types of tensors, with PyTorch's names ({@code torch.float32} is {@link #FLOAT32}).
 * The codes match the shim's {@code LT_*} dtype constants.
 *
 * <p>Immutable and thread-safe.
 */
public enum DType {
    FLOAT32(0, 4, true),
    FLOAT64(1, 8, true),
    FLOAT16(2, 2, true),
    BFLOAT16(3, 2, true),
    INT64(4, 8, false),
    INT32(5, 4, false),
    UINT8(6, 1, false),
    BOOL(7, 1, false),
    INT16(8, 2, false),
    INT8(9, 1, false);

    private static final DType[] BY_CODE = values();

    private final int code;
    private final int byteSize;
    private final boolean floatingPoint;

    DType(int code, int byteSize, boolean floatingPoint) {
        this.code = code;
        this.byteSize = byteSize;
        this.floatingPoint = floatingPoint;
    }

    /** The shim's code for this dtype. */
    int code() {
        return code;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** Whether this is a floating-point type (the only ones that can require gradients). */
    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    static DType ofCode(int code) {
        if (code < 0 || code >= BY_CODE.length) {
            throw new IllegalStateException("tensor has a dtype lora4j does not support (code " + code + ")");
        }
        return BY_CODE[code];
    }
}
