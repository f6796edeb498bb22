package dev.lora4j.benchmarks;

import static dev.lora4j.nn.Functional.crossEntropy;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.data.Batch;
import dev.lora4j.data.DataLoader;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.io.Idx;
import dev.lora4j.nn.Sequential;
import dev.lora4j.optim.Adam;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Iterator;
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
 * (g) of the comparison: the demo's pre-training loop ({@code examples/.../FineTune.java}), one
 * step per benchmark call, through the public API only. Fashion-MNIST is read once from Debian's
 * IDX files with {@link Idx} (as the demo's loader does: all images to float32 / 255, then the
 * first 10,000 kept); a {@link DataLoader} (batch 10, shuffled with a fixed seed and a new
 * permutation each epoch, last short batch dropped) gathers each batch; then forward,
 * cross-entropy, backward, Adam (lr 1e-3) over the MLP of (d), and the loss read back to the
 * host as a progress bar would. Compare with {@code Lora4jWork.mlpStep} (d), the same step on a
 * fixed batch: the difference is what the real loop costs. The same work as
 * {@code djl.DjlLoop}, {@code train_loop} of {@code benchmarks/native/bench_native.cpp} and of
 * {@code benchmarks/python/bench.py}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 3, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class Lora4jLoop {

    /** The demo's {@code --limit 10000}. */
    static final int TRAIN_IMAGES = 10_000;
    static final int BATCH = Lora4jWork.BATCH;

    /** Intra-op threads (LibTorch and OpenBLAS). */
    @Param("1")
    public int threads;

    /** Where the IDX files are: {@code LORA4J_FASHION_MNIST}, else Debian's dataset-fashion-mnist. */
    public static Path fashionMnist() {
        String d = System.getenv("LORA4J_FASHION_MNIST");
        return Path.of(d != null ? d : "/usr/share/datasets/fashion-mnist");
    }

    /** The demo's data: every training image as float32 / 255, the first {@code n} kept, labels as int64. */
    static TensorDataset load(int n) throws IOException {
        Path dir = fashionMnist();
        try (TensorScope scope = TensorScope.open()) {
            Tensor x = Idx.read(dir.resolve("train-images-idx3-ubyte.gz"));
            Tensor y = Idx.read(dir.resolve("train-labels-idx1-ubyte.gz"));
            Tensor inputs = x.reshape(x.size(0), -1).to(DType.FLOAT32).div(255.0).narrow(0, 0, n).clone().keep();
            Tensor targets = y.narrow(0, 0, n).to(DType.INT64).keep();
            return new TensorDataset(inputs, targets);
        }
    }

    @State(Scope.Thread)
    public static class LoopState {
        TensorDataset data;
        Sequential model;
        Adam adam;
        long epochSeed;
        Iterator<Batch> batches;
        double lastLoss;

        @Setup(Level.Trial)
        public void setUp(Lora4jLoop work) {
            Lora4jWork.threads(work.threads);
            try {
                data = load(TRAIN_IMAGES);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            model = Lora4jWork.mlp();
            adam = new Adam(model.trainableParameters(), 1e-3);
        }

        /** The next batch, starting a new epoch (a new permutation) when one ends. */
        Batch next() {
            if (batches == null || !batches.hasNext()) batches = data.loader(BATCH, true, epochSeed++, true).iterator();
            return batches.next();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[lora4j] trainLoop last loss " + lastLoss + " after " + epochSeed + " epoch(s) begun");
            adam.close();
            model.close();
            data.close();
        }
    }

    /** (g) one step of the demo's loop: next shuffled batch, forward, cross-entropy, backward, Adam, loss read back. */
    @Benchmark
    public double trainLoop(LoopState s) {
        try (TensorScope scope = TensorScope.open()) {
            Batch b = s.next(); // inside the step's scope, as the demo takes it
            s.adam.zeroGrad();
            Tensor loss = crossEntropy(s.model.forward(b.inputs()), b.targets());
            loss.backward();
            s.adam.step();
            return s.lastLoss = loss.item();
        }
    }

    /**
     * (g) as the demo took its batches before: outside the step's scope ({@code for (Batch b :
     * loader) try (b; var scope = ...)}), so that the batch's tensors are owned by nobody until
     * closed (registered with the safety net, counted against the native budget). A variant,
     * reported beside (g): what taking the batch inside the scope saves.
     */
    @Benchmark
    public double trainLoopUnscoped(LoopState s) {
        try (Batch b = s.next(); TensorScope scope = TensorScope.open()) {
            s.adam.zeroGrad();
            Tensor loss = crossEntropy(s.model.forward(b.inputs()), b.targets());
            loss.backward();
            s.adam.step();
            return s.lastLoss = loss.item();
        }
    }
}
