package dev.lora4j.internal;

import dev.lora4j.TorchException;
import dev.lora4j.bindings.LibLora4j;

/** Turns the shim's status codes into {@link TorchException}s. Stateless, thread-safe. */
public final class Status {

    static {
        NativeLibrary.ensureLoaded();
    }

    private Status() {}

    /** Throws a {@link TorchException} for {@code operation} when {@code status} is not LT_OK. */
    public static void check(int status, String operation) {
        if (status != 0) {
            throw failure(status, operation);
        }
    }

    private static TorchException failure(int status, String operation) {
        String message = LibLora4j.lt_last_error().reinterpret(Long.MAX_VALUE).getString(0);
        return new TorchException(operation, message, TorchException.Kind.ofStatus(status));
    }
}
