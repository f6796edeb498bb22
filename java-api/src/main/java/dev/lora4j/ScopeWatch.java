package dev.lora4j;

import java.lang.ref.PhantomReference;

/**
 * Watches a scope object ({@link TensorScope}, {@link NoGradScope}) for the GC on behalf of
 * the thread's stack of open scopes: the stack's entry holds the watch, so the GC enqueues it
 * (on {@link SafetyNet#QUEUE}, acted on by the safety net's thread) only if the scope object
 * became unreachable while its entry was still on a stack, that is, while the scope was left
 * open. A closed scope's entry drops out of reach with its watch, which then costs nothing
 * more: no list to leave, unlike a {@link java.lang.ref.Cleaner} registration.
 *
 * <p>Internal to {@code dev.lora4j}; {@link #dropped} runs on the safety net's thread.
 */
final class ScopeWatch extends PhantomReference<Object> {

    private final Runnable onDropped;

    /** Watches {@code scope}; {@code onDropped} must not refer to it. */
    ScopeWatch(Object scope, Runnable onDropped) {
        super(scope, SafetyNet.QUEUE);
        this.onDropped = onDropped;
    }

    void dropped() {
        onDropped.run();
    }
}
