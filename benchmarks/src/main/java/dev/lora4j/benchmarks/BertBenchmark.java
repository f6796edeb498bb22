package dev.lora4j.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.hftools.OnnxBertImporter;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import dev.lora4j.nn.Functional;
import dev.lora4j.optim.AdamW;
import java.io.IOException;
import java.io.InputStream;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * all-MiniLM-L6-v2 (22M parameters) on batch 32 × sequence 128 with padding (row i real for its
 * first 64 + 2i tokens): {@code inferLora4j} the encoder forward without gradients,
 * {@code inferOrt} ONNX Runtime on the same ONNX file (one intra-op thread, all graph
 * optimisations), {@code loraStepLora4j} one LoRA training step (r 8, α 16 on query and value;
 * mean pooling, MSE to a fixed target, backward, AdamW). The Python peer is
 * benchmarks/python/bert_bench.py on the checkpoint folder this benchmark writes
 * ({@code benchmarks/target/minilm-hf}). One thread everywhere. benchmarks/run-bert.sh runs the
 * same work interleaved ({@link BertCompare}), which suits a shared machine better.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx3g"})
public class BertBenchmark {

    static final int BATCH = 32, SEQ = 128;

    @Param({"benchmarks/target/minilm-hf"})
    public String checkpoint;

    private BertModel bert;
    private Tensor ids, mask, types, target;
    private OrtEnvironment env;
    private OrtSession ort;
    private Map<String, OnnxTensor> ortInputs;
    private long[] idv, mv;

    /** The benchmark batch as tensors and as the arrays ONNX Runtime takes, and the step's target. */
    record Inputs(Tensor ids, Tensor mask, Tensor types, Tensor target, long[] idv, long[] maskv) implements AutoCloseable {
        @Override
        public void close() {
            ids.close();
            mask.close();
            types.close();
            target.close();
        }
    }

    /**
     * Id 1000 + (131 i + 31 t) mod (vocab - 1000); row i real for its first 64 + 2i tokens, padding
     * (id 0, mask 0) after; token types 0; target row i, dimension d: sin(i · hidden + d).
     */
    static Inputs inputs(int vocab, int hidden) {
        long[] idv = new long[BATCH * SEQ], mv = new long[BATCH * SEQ];
        for (int i = 0; i < BATCH; i++) {
            for (int t = 0; t < 64 + 2 * i; t++) {
                idv[i * SEQ + t] = 1000 + (131L * i + 31L * t) % (vocab - 1000);
                mv[i * SEQ + t] = 1;
            }
        }
        float[] tv = new float[BATCH * hidden];
        for (int i = 0; i < BATCH; i++) for (int d = 0; d < hidden; d++) tv[i * hidden + d] = (float) Math.sin(i * hidden + d);
        return new Inputs(Tensor.of(idv, BATCH, SEQ), Tensor.of(mv, BATCH, SEQ), Tensor.zeros(DType.INT64, BATCH, SEQ),
                Tensor.of(tv, BATCH, hidden), idv, mv);
    }

    /** The ONNX file from the langchain4j artifact, and its import as a HF folder (once). */
    static Path prepare(Path dir) throws IOException {
        Path onnx = dir.resolveSibling("minilm.onnx");
        if (!Files.exists(onnx)) {
            Files.createDirectories(onnx.getParent());
            try (InputStream in = BertBenchmark.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
                if (in == null) throw new IOException("all-minilm-l6-v2.onnx is not on the classpath");
                Files.copy(in, onnx);
            }
        }
        if (!Files.exists(dir.resolve("model.safetensors"))) OnnxBertImporter.importModel(onnx, dir);
        return onnx;
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Torch.setNumThreads(1);
        Torch.manualSeed(0);
        Path dir = Path.of(checkpoint).toAbsolutePath();
        Path onnx = prepare(dir);
        bert = BertLoader.bertModel(dir);
        Inputs in = inputs(bert.config().vocabSize(), bert.config().hiddenSize());
        ids = in.ids();
        mask = in.mask();
        types = in.types();
        target = in.target();
        idv = in.idv();
        mv = in.maskv();

        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(1);
        o.setInterOpNumThreads(1);
        o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        ort = env.createSession(onnx.toString(), o);
        long[] shape = {BATCH, SEQ};
        ortInputs = Map.of("input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(idv), shape),
                "attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(mv), shape),
                "token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(new long[BATCH * SEQ]), shape));
    }

    /** Separate state for the training step: the model gets LoRA layers. */
    @State(Scope.Thread)
    public static class Training {
        BertModel bert;
        AdamW optimizer;

        @Setup(Level.Trial)
        public void setUp(BertBenchmark b) throws Exception {
            bert = BertLoader.bertModel(Path.of(b.checkpoint).toAbsolutePath());
            Lora.wrap(bert, LoraConfig.of(8, 16).withTargetModules("query", "value"));
            Lora.markOnlyLoraAsTrainable(bert, LoraConfig.Bias.NONE);
            optimizer = new AdamW(bert.trainableParameters(), 1e-4);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            optimizer.close();
            bert.close();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        for (OnnxTensor t : ortInputs.values()) t.close();
        ort.close();
        bert.close();
    }

    @Benchmark
    public float inferLora4j() {
        try (var ng = Torch.noGrad(); var s = TensorScope.open()) {
            return (float) bert.forward(ids, mask, types).narrow(0, 0, 1).narrow(1, 0, 1).sum().item();
        }
    }

    @Benchmark
    public float inferOrt() throws Exception {
        try (OrtSession.Result r = ort.run(ortInputs)) {
            return ((float[][][]) r.get(0).getValue())[0][0][0];
        }
    }

    @Benchmark
    public double loraStepLora4j(Training t) {
        try (var s = TensorScope.open()) {
            Tensor emb = SentenceEmbeddings.meanPooling(t.bert.forward(ids, mask, types), mask);
            Tensor loss = Functional.mseLoss(emb, target);
            t.optimizer.zeroGrad();
            loss.backward();
            t.optimizer.step();
            return loss.item();
        }
    }
}
