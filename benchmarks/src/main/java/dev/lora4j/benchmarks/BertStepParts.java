package dev.lora4j.benchmarks;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import dev.lora4j.nn.Functional;
import dev.lora4j.optim.AdamW;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The LoRA training step of {@link BertBenchmark} (all-MiniLM-L6-v2, r 8, α 16 on query and
 * value, mean pooling, MSE, AdamW) on batch 32 × any sequence length, timed by part: forward
 * (with the loss), backward, optimizer. Row i is real for its first seq/2 + i·seq/64 tokens (at
 * seq 128 the batch of {@link BertBenchmark}). Its Python twin is
 * benchmarks/python/bert_step_parts.py; run both under one thread to see where the step's time
 * goes on each side (perf record on either process gives the kernels).
 *
 * <p>usage: {@code BertStepParts CHECKPOINT_DIR SEQ STEPS [THREADS [skip-padding]]}; prints
 * {@code PARTS lora4j <seq> forward backward optimizer total} ({@code lora4j-skip-padding} with {@link BertModel#skipPadding}) in process CPU ms, median over the steps,
 * and {@code FIRST lora4j <seq> ...} the wall ms of the two warm-up steps (a JVM's first steps
 * include class loading, JIT compilation and the linking of every native downcall).
 */
public final class BertStepParts {

    private BertStepParts() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]).toAbsolutePath();
        int seq = Integer.parseInt(args[1]);
        int steps = Integer.parseInt(args[2]);
        int threads = args.length > 3 ? Integer.parseInt(args[3]) : 1;
        boolean skipPadding = args.length > 4 && args[4].equals("skip-padding");
        int batch = BertBenchmark.BATCH;
        Torch.setNumThreads(threads);
        Torch.manualSeed(0);
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        try (BertModel bert = BertLoader.bertModel(dir)) {
            bert.skipPadding(skipPadding);
            int vocab = bert.config().vocabSize(), hidden = bert.config().hiddenSize();
            long[] idv = new long[batch * seq], mv = new long[batch * seq];
            for (int i = 0; i < batch; i++) {
                for (int t = 0; t < seq / 2 + i * seq / 64 && t < seq; t++) {
                    idv[i * seq + t] = 1000 + (131L * i + 31L * t) % (vocab - 1000);
                    mv[i * seq + t] = 1;
                }
            }
            float[] tv = new float[batch * hidden];
            for (int i = 0; i < batch; i++) for (int d = 0; d < hidden; d++) tv[i * hidden + d] = (float) Math.sin(i * hidden + d);
            Lora.wrap(bert, LoraConfig.of(8, 16).withTargetModules("query", "value"));
            Lora.markOnlyLoraAsTrainable(bert, LoraConfig.Bias.NONE);
            try (Tensor ids = Tensor.of(idv, batch, seq); Tensor mask = Tensor.of(mv, batch, seq);
                    Tensor types = Tensor.zeros(DType.INT64, batch, seq); Tensor target = Tensor.of(tv, batch, hidden);
                    AdamW opt = new AdamW(bert.trainableParameters(), 1e-4)) {
                double[][] parts = new double[4][steps];
                StringBuilder first = new StringBuilder("FIRST lora4j " + seq + " (wall ms of the two warm-up steps)");
                for (int s = -2; s < steps; s++) {
                    try (var scope = TensorScope.open()) {
                        long w0 = System.nanoTime();
                        long c0 = os.getProcessCpuTime();
                        Tensor emb = SentenceEmbeddings.meanPooling(bert.forward(ids, mask, types), mask);
                        Tensor loss = Functional.mseLoss(emb, target);
                        long c1 = os.getProcessCpuTime();
                        opt.zeroGrad();
                        loss.backward();
                        long c2 = os.getProcessCpuTime();
                        opt.step();
                        loss.item();
                        long c3 = os.getProcessCpuTime();
                        if (s < 0) first.append(String.format(Locale.ROOT, " %.1f", (System.nanoTime() - w0) / 1e6));
                        if (s >= 0) {
                            parts[0][s] = (c1 - c0) / 1e6;
                            parts[1][s] = (c2 - c1) / 1e6;
                            parts[2][s] = (c3 - c2) / 1e6;
                            parts[3][s] = (c3 - c0) / 1e6;
                        }
                    }
                }
                StringBuilder b = new StringBuilder("PARTS " + (skipPadding ? "lora4j-skip-padding " : "lora4j ") + seq);
                for (double[] p : parts) {
                    java.util.Arrays.sort(p);
                    b.append(String.format(Locale.ROOT, " %.1f", p[steps / 2]));
                }
                System.out.println(b);
                System.out.println(first);
            }
        }
    }
}
