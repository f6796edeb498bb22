package dev.lora4j.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
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
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Locale;

/**
 * The BERT comparison as interleaved rounds, for a shared machine: each round runs lora4j's
 * encoder forward, ONNX Runtime's, one lora4j LoRA step and one with {@link BertModel#skipPadding}
 * (work {@code step-skip-padding}) once each, so that load drifting over
 * the run hits every peer alike (JMH's {@link BertBenchmark} runs them one after the other). The
 * work is {@link BertBenchmark}'s (all-MiniLM-L6-v2, batch 32 × sequence 128 with padding).
 * Prints, per work, {@code RESULT <work> <threads> <wall ms of every round>} and
 * {@code CPU <work> <threads> <process CPU ms of every round>}, the lines
 * benchmarks/python/bert_bench.py prints too; benchmarks/run-bert.sh turns them into ratios.
 *
 * <p>usage: {@code BertCompare CHECKPOINT_DIR THREADS ROUNDS}
 */
public final class BertCompare {

    private BertCompare() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "benchmarks/target/minilm-hf").toAbsolutePath();
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 5;
        Torch.setNumThreads(threads);
        Torch.manualSeed(0);
        Path onnx = BertBenchmark.prepare(dir);
        var osBean = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

        try (BertModel bert = BertLoader.bertModel(dir); BertModel trained = BertLoader.bertModel(dir);
                BertModel packed = BertLoader.bertModel(dir)) {
            BertBenchmark.Inputs in = BertBenchmark.inputs(bert.config().vocabSize(), bert.config().hiddenSize());
            Lora.wrap(trained, LoraConfig.of(8, 16).withTargetModules("query", "value"));
            Lora.markOnlyLoraAsTrainable(trained, LoraConfig.Bias.NONE);
            Lora.wrap(packed, LoraConfig.of(8, 16).withTargetModules("query", "value"));
            Lora.markOnlyLoraAsTrainable(packed, LoraConfig.Bias.NONE);
            packed.skipPadding(true);
            OrtEnvironment env = OrtEnvironment.getEnvironment();
            OrtSession.SessionOptions o = new OrtSession.SessionOptions();
            o.setIntraOpNumThreads(threads);
            o.setInterOpNumThreads(1);
            o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            long[] shape = {BertBenchmark.BATCH, BertBenchmark.SEQ};
            try (AdamW optimizer = new AdamW(trained.trainableParameters(), 1e-4);
                    AdamW packedOptimizer = new AdamW(packed.trainableParameters(), 1e-4);
                    OrtSession ort = env.createSession(onnx.toString(), o);
                    OnnxTensor oIds = OnnxTensor.createTensor(env, LongBuffer.wrap(in.idv()), shape);
                    OnnxTensor oMask = OnnxTensor.createTensor(env, LongBuffer.wrap(in.maskv()), shape);
                    OnnxTensor oTypes = OnnxTensor.createTensor(env, LongBuffer.wrap(new long[in.idv().length]), shape)) {
                Map<String, OnnxTensor> ortInputs = Map.of("input_ids", oIds, "attention_mask", oMask, "token_type_ids", oTypes);
                String[] works = {"lora4j infer", "ort infer", "lora4j step", "lora4j step-skip-padding"};
                Runnable[] ops = {
                    () -> {
                        try (var ng = Torch.noGrad(); var s = TensorScope.open()) {
                            bert.forward(in.ids(), in.mask(), in.types()).narrow(0, 0, 1).narrow(1, 0, 1).sum().item();
                        }
                    },
                    () -> {
                        try (OrtSession.Result r = ort.run(ortInputs)) {
                            r.get(0).getValue();
                        } catch (Exception e) {
                            throw new IllegalStateException(e);
                        }
                    },
                    () -> step(trained, optimizer, in),
                    () -> step(packed, packedOptimizer, in)
                };
                List<List<Double>> wall = new ArrayList<>(), cpu = new ArrayList<>();
                for (int w = 0; w < works.length; w++) {
                    wall.add(new ArrayList<>());
                    cpu.add(new ArrayList<>());
                }
                for (int r = -2; r < rounds; r++) { // two warm-up rounds
                    for (int w = 0; w < works.length; w++) {
                        long c0 = osBean.getProcessCpuTime(), t0 = System.nanoTime();
                        ops[w].run();
                        double ms = (System.nanoTime() - t0) / 1e6, cms = (osBean.getProcessCpuTime() - c0) / 1e6;
                        if (r >= 0) {
                            wall.get(w).add(ms);
                            cpu.get(w).add(cms);
                        }
                        System.out.printf(Locale.ROOT, "%s round %d: %.1f ms wall, %.1f ms CPU%n", works[w], r, ms, cms);
                    }
                }
                for (int w = 0; w < works.length; w++) {
                    System.out.println(line("RESULT", works[w], threads, wall.get(w)));
                    System.out.println(line("CPU", works[w], threads, cpu.get(w)));
                }
            }
            in.close();
        }
    }

    /** One LoRA training step of {@code model}: mean pooling, MSE, backward, AdamW. */
    private static void step(BertModel model, AdamW optimizer, BertBenchmark.Inputs in) {
        try (var s = TensorScope.open()) {
            Tensor emb = SentenceEmbeddings.meanPooling(model.forward(in.ids(), in.mask(), in.types()), in.mask());
            Tensor loss = Functional.mseLoss(emb, in.target());
            optimizer.zeroGrad();
            loss.backward();
            optimizer.step();
            loss.item();
        }
    }

    private static String line(String kind, String work, int threads, List<Double> values) {
        StringBuilder b = new StringBuilder(kind + " " + work + " " + threads);
        for (double v : values) b.append(String.format(Locale.ROOT, " %.1f", v));
        return b.toString();
    }
}
