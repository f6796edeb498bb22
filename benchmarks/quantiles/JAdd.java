import dev.lora4j.Tensor;
import dev.lora4j.Torch;
import java.util.*;

/** `try (Tensor c = a.add(b)) {}` timed in blocks of 1000 calls: min / q10 / median ns per call. */
public class JAdd {
    public static void main(String[] args) {
        Torch.setNumThreads(1);
        Tensor a = Tensor.ones(1), b = Tensor.ones(1);
        int blocks = Integer.parseInt(args[0]);
        for (int i = 0; i < 2_000_000; i++) try (Tensor c = a.add(b)) {}
        double[] t = new double[blocks];
        for (int k = 0; k < blocks; k++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < 1000; i++) try (Tensor c = a.add(b)) {}
            t[k] = (System.nanoTime() - t0) / 1000.0;
        }
        Arrays.sort(t);
        System.out.printf("lora4j add: min %.1f q10 %.1f q25 %.1f med %.1f ns%n", t[0], t[blocks / 10], t[blocks / 4], t[blocks / 2]);
    }
}
