package dev.lora4j;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit extension: every test runs inside its own {@link TensorScope}, so the tensors it
 * creates are freed when it ends. Use with {@code @ExtendWith(ScopePerTest.class)}.
 */
public final class ScopePerTest implements BeforeEachCallback, AfterEachCallback {

    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(ScopePerTest.class);

    @Override
    public void beforeEach(ExtensionContext context) {
        context.getStore(NS).put("scope", TensorScope.open());
    }

    @Override
    public void afterEach(ExtensionContext context) {
        context.getStore(NS).remove("scope", TensorScope.class).close();
    }
}
