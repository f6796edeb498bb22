package dev.lora4j;

/**
 * An error reported by LibTorch, carrying its message and the name of the lora4j operation
 * that failed. Cheap argument errors found in Java (nulls, ranks, shapes) are thrown as
 * {@link IllegalArgumentException}, {@link NullPointerException} or
 * {@link IndexOutOfBoundsException} before LibTorch is called.
 *
 * <p>Immutable and thread-safe.
 */
public final class TorchException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** The category of a LibTorch failure, from the C++ exception type that raised it. */
    public enum Kind {
        /** {@code c10::Error} or another {@code std::exception}. */
        GENERIC,
        /** {@code c10::IndexError}: an index out of range. */
        INDEX,
        /** {@code c10::ValueError}: a bad argument value. */
        VALUE,
        /** {@code c10::TypeError}: a wrong dtype or type. */
        TYPE,
        /** {@code c10::NotImplementedError}: no kernel for these arguments. */
        NOT_IMPLEMENTED,
        /** The allocator could not provide the memory asked for. */
        OUT_OF_MEMORY;

        /** The kind for a status code of the native shim. */
        public static Kind ofStatus(int status) {
            return switch (status) {
                case 2 -> INDEX;
                case 3, 7 -> VALUE;
                case 4 -> TYPE;
                case 5 -> NOT_IMPLEMENTED;
                case 6 -> OUT_OF_MEMORY;
                default -> GENERIC;
            };
        }
    }

    private final String operation;
    private final String nativeMessage;
    private final Kind kind;

    /** Creates an exception for {@code operation} with LibTorch's {@code nativeMessage}. */
    public TorchException(String operation, String nativeMessage, Kind kind) {
        super(operation + ": " + nativeMessage);
        this.operation = operation;
        this.nativeMessage = nativeMessage;
        this.kind = kind;
    }

    /** The lora4j operation that failed, e.g. {@code "matmul"}. */
    public String operation() {
        return operation;
    }

    /** LibTorch's own message, without the operation name. */
    public String nativeMessage() {
        return nativeMessage;
    }

    /** What kind of error LibTorch reported. */
    public Kind kind() {
        return kind;
    }
}
