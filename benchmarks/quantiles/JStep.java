import dev.lora4j.benchmarks.Lora4jWork;
import java.util.*;

/** Per-step wall times of Lora4jWork's loraStep / mlpLoraStep: min / q10 / q25 / median. */
public class JStep {
    public static void main(String[] args) {
        Lora4jWork w = new Lora4jWork();
        w.threads = Integer.parseInt(args[1]);
        int n = Integer.parseInt(args[2]);
        Runnable op;
        if (args[0].equals("lora_step")) {
            var s = new Lora4jWork.LoraState();
            s.setUp(w);
            op = () -> w.loraStep(s);
        } else {
            var s = new Lora4jWork.MlpLoraState();
            s.setUp(w);
            op = () -> w.mlpLoraStep(s);
        }
        for (int i = 0; i < Math.max(3000, n / 2); i++) op.run(); // JIT warm-up
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            op.run();
            t[i] = (System.nanoTime() - t0) / 1e3;
        }
        Arrays.sort(t);
        System.out.printf("lora4j %s t%s: min %.1f q10 %.1f q25 %.1f med %.1f us%n", args[0], args[1], t[0], t[n / 10], t[n / 4], t[n / 2]);
    }
}
