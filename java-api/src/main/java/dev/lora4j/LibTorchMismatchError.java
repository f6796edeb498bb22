package dev.lora4j;

/**
 * Thrown when lora4j's native shim cannot run on the LibTorch present: the shim was built for
 * another LibTorch line (say 1.13 while the system has 2.6), or no LibTorch was found. The message
 * says which LibTorch the shim needs, which one was found, and how to fix it (the native artifact
 * for that LibTorch, or a shim built against it).
 *
 * <p>An {@link UnsatisfiedLinkError}, so code that already handles a failed native load still does.
 * Immutable.
 */
public final class LibTorchMismatchError extends UnsatisfiedLinkError {

    private static final long serialVersionUID = 1L;

    /** Created by lora4j's loader; the message is the whole explanation. */
    public LibTorchMismatchError(String message) {
        super(message);
    }
}
