import dev.lora4j.benchmarks.PerCallBenchmark;
import java.util.*;
/** PerCallBenchmark's steps timed in interleaved blocks of 1000 calls: min / q10 ns per call. */
public class PerCallBlocks {
    public static void main(String[] args) {
        PerCallBenchmark b = new PerCallBenchmark();
        b.setUp();
        String[] names = {"addRawBindings", "addCriticalFree", "addStatus", "addPinned", "addInOpenScope", "add"};
        Runnable[] ops = {b::addRawBindings, b::addCriticalFree, b::addStatus, b::addPinned, b::addInOpenScope, b::add};
        int blocks = Integer.parseInt(args[0]);
        double[][] t = new double[ops.length][blocks];
        for (int w = 0; w < 300; w++) for (Runnable op : ops) for (int i = 0; i < 1000; i++) op.run();
        for (int k = 0; k < blocks; k++) {
            for (int j = 0; j < ops.length; j++) {
                Runnable op = ops[j];
                long t0 = System.nanoTime();
                for (int i = 0; i < 1000; i++) op.run();
                t[j][k] = (System.nanoTime() - t0) / 1000.0;
            }
        }
        for (int j = 0; j < ops.length; j++) {
            Arrays.sort(t[j]);
            System.out.printf("%-18s min %6.1f q10 %6.1f ns%n", names[j], t[j][0], t[j][blocks / 10]);
        }
        b.tearDown();
    }
}
