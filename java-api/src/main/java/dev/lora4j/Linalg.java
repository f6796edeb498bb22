package dev.lora4j;

import static dev.lora4j.bindings.LibLora4j.lt_qr;
import static dev.lora4j.bindings.LibLora4j.lt_svd;

import dev.lora4j.internal.Calls;
import dev.lora4j.internal.PerThread;
import dev.lora4j.internal.Status;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/** Linear algebra, as {@code torch.linalg}. Stateless and thread-safe. */
public final class Linalg {

    private Linalg() {}

    /**
     * The factors of a reduced singular value decomposition {@code a = U·diag(S)·Vh}, as
     * {@code torch.linalg.svd(a, full_matrices=False)}: for a (m, n) and k = min(m, n), U is
     * (m, k), S (k) in descending order and Vh (k, n). Closing closes all three.
     */
    public record Svd(Tensor u, Tensor s, Tensor vh) implements AutoCloseable {
        @Override
        public void close() {
            u.close();
            s.close();
            vh.close();
        }
    }

    /** The reduced SVD of a matrix (or a batch of matrices). */
    public static Svd svd(Tensor a) {
        Objects.requireNonNull(a, "a");
        if (a.dim() < 2) throw new IllegalArgumentException("svd needs a matrix, got shape " + Arrays.toString(a.shape()));
        PerThread t = PerThread.get();
        MemorySegment out = t.longBuffer(2, 3);
        MemorySegment h = Calls.pin(a, "a");
        try {
            Status.check(lt_svd(h, out, out.asSlice(8), out.asSlice(16)), "svd");
        } finally {
            Calls.unpin(a);
        }
        Tensor u = Calls.adopt(t, out.get(ValueLayout.JAVA_LONG, 0));
        Tensor s = Calls.adopt(t, out.get(ValueLayout.JAVA_LONG, 8));
        return new Svd(u, s, Calls.adopt(t, out.get(ValueLayout.JAVA_LONG, 16)));
    }

    /**
     * The factors of a reduced QR decomposition {@code a = Q·R}, as
     * {@code torch.linalg.qr(a, mode="reduced")}: for a (m, n) and k = min(m, n), Q is (m, k) with
     * orthonormal columns and R (k, n) upper triangular (LAPACK's signs). Closing closes both.
     */
    public record Qr(Tensor q, Tensor r) implements AutoCloseable {
        @Override
        public void close() {
            q.close();
            r.close();
        }
    }

    /** The reduced QR decomposition of a matrix (or a batch of matrices). */
    public static Qr qr(Tensor a) {
        Objects.requireNonNull(a, "a");
        if (a.dim() < 2) throw new IllegalArgumentException("qr needs a matrix, got shape " + Arrays.toString(a.shape()));
        PerThread t = PerThread.get();
        MemorySegment out = t.longBuffer(2, 2);
        MemorySegment h = Calls.pin(a, "a");
        try {
            Status.check(lt_qr(h, out, out.asSlice(8)), "qr");
        } finally {
            Calls.unpin(a);
        }
        Tensor q = Calls.adopt(t, out.get(ValueLayout.JAVA_LONG, 0));
        return new Qr(q, Calls.adopt(t, out.get(ValueLayout.JAVA_LONG, 8)));
    }
}
