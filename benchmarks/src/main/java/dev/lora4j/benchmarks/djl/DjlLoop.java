package dev.lora4j.benchmarks.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.lora4j.benchmarks.Lora4jLoop;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPInputStream;
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
 * (g) of the comparison on DJL 0.22.0: the demo's pre-training loop, one step per call, the
 * same work as {@code Lora4jLoop}, with DJL's NDArray API and no Trainer (as {@link DjlWork}).
 * The IDX files are read once with plain Java (gzip, big-endian header) into one NDArray, all
 * images to float32 / 255, the first 10,000 kept; each epoch a new permutation (Fisher-Yates
 * over {@link Random} with the epoch's seed, as lora4j's DataLoader); each batch of 10 indexed
 * from the preloaded arrays ({@code get(manager, NDIndex("{}", indices))}, PyTorch's advanced
 * indexing), then the
 * step of {@code DjlWork.mlpStep} on it and the loss read back ({@code getFloat()}).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 3, jvmArgsAppend = {"-Dai.djl.pytorch.num_interop_threads=1"})
public class DjlLoop {

    static final int TRAIN_IMAGES = 10_000;
    static final int BATCH = DjlWork.BATCH;

    @Param("1")
    public int threads;

    /** An IDX file of unsigned bytes (gzipped) as a uint8 NDArray shaped as its header says. */
    static NDArray readIdx(NDManager m, Path file) throws IOException {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(new GZIPInputStream(Files.newInputStream(file), 1 << 16)))) {
            int magic = in.readInt();
            if ((magic >>> 8) != 0x08 || (magic & 0xff) == 0) throw new IOException(file + ": not an IDX file of unsigned bytes");
            long[] dims = new long[magic & 0xff];
            for (int i = 0; i < dims.length; i++) dims[i] = in.readInt();
            byte[] data = in.readNBytes(Math.toIntExact(new Shape(dims).size()));
            if (data.length != new Shape(dims).size()) throw new IOException(file + ": truncated");
            return m.create(ByteBuffer.wrap(data), new Shape(dims), DataType.UINT8);
        }
    }

    @State(Scope.Thread)
    public static class LoopState {
        NDManager m;
        NDArray x;
        NDArray y;
        List<NDArray> params = new ArrayList<>();
        List<String> ids = new ArrayList<>();
        Optimizer adam;
        Loss loss = Loss.softmaxCrossEntropyLoss();
        long epochSeed;
        long[] order;
        int next = TRAIN_IMAGES;
        float lastLoss;

        @Setup(Level.Trial)
        public void setUp(DjlLoop work) {
            m = DjlWork.start(work.threads);
            Path dir = Lora4jLoop.fashionMnist();
            try (NDManager load = m.newSubManager()) {
                NDArray images = readIdx(load, dir.resolve("train-images-idx3-ubyte.gz"));
                NDArray labels = readIdx(load, dir.resolve("train-labels-idx1-ubyte.gz"));
                NDArray all = images.reshape(images.getShape().get(0), -1).toType(DataType.FLOAT32, false).div(255f);
                x = all.get("0:" + TRAIN_IMAGES).duplicate();
                y = labels.get("0:" + TRAIN_IMAGES).toType(DataType.INT64, false);
                x.attach(m);
                y.attach(m);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            // The index must select rows: row 3 of x.get([3, 1]) is row 3 of x.
            try (NDManager check = m.newSubManager()) {
                NDArray two = x.get(check, new NDIndex("{}", check.create(new long[] {3, 1})));
                if (!two.getShape().equals(new Shape(2, 784)) || !two.get(0).contentEquals(x.get(3)))
                    throw new IllegalStateException("x.get(index) does not select rows: " + two.getShape());
            }
            int[] sizes = {784, 1000, 2000, 10};
            for (int l = 0; l < 3; l++) {
                for (NDArray p : DjlWork.linearParams(m, sizes[l], sizes[l + 1])) {
                    p.setRequiresGradient(true);
                    ids.add("p" + params.size());
                    params.add(p);
                }
            }
            adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
        }

        /** The next batch's sample indices, a new permutation when an epoch ends (dropping a short last batch). */
        long[] nextIndices() {
            if (next + BATCH > TRAIN_IMAGES) {
                order = permutation(TRAIN_IMAGES, new Random(epochSeed++));
                next = 0;
            }
            long[] idx = Arrays.copyOfRange(order, next, next + BATCH);
            next += BATCH;
            return idx;
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            System.out.println("[djl] trainLoop last loss " + lastLoss + " after " + epochSeed + " epoch(s) begun");
            m.close();
        }
    }

    static long[] permutation(int n, Random random) {
        long[] p = new long[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            long t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** (g) one step: gather the next shuffled batch, forward, cross-entropy, backward, Adam, loss read back. */
    @Benchmark
    public float trainLoop(LoopState s) {
        try (NDManager step = s.m.newSubManager()) {
            // The batch lands in the step's manager, and so does everything computed from it.
            // (Not x.tempAttach(step) then x.get(idx): DJL 0.22 then copies all of x per call.)
            NDIndex idx = new NDIndex("{}", step.create(s.nextIndices()));
            NDArray xb = s.x.get(step, idx);
            NDArray yb = s.y.get(step, idx);
            NDArray l;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                l = s.loss.evaluate(new NDList(yb), new NDList(DjlWork.mlp(xb, s.params)));
                gc.backward(l);
            }
            DjlWork.update(s.adam, s.ids, s.params);
            return s.lastLoss = l.getFloat();
        }
    }
}
