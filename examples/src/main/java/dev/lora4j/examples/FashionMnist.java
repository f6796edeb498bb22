package dev.lora4j.examples;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.data.TensorDataset;
import dev.lora4j.io.Idx;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fashion-MNIST (Zalando) from Debian's {@code dataset-fashion-mnist} package: 60,000 training
 * and 10,000 test images of 28×28 pixels in 10 classes, as flattened float32 inputs scaled to
 * [0, 1] and int64 labels. The folder can be changed with {@code -Dlora4j.fashionmnist=DIR}.
 */
public final class FashionMnist {

    /** Where Debian's package puts the files. */
    public static final Path DEBIAN_DIR = Path.of("/usr/share/datasets/fashion-mnist");

    /** The class names, by label. */
    public static final String[] CLASSES = {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    };

    /** The number of training images. */
    public static final int TRAIN_SIZE = 60_000;

    private FashionMnist() {}

    public static Path dir() {
        String d = System.getProperty("lora4j.fashionmnist");
        return d != null ? Path.of(d) : DEBIAN_DIR;
    }

    public static TensorDataset train() throws IOException {
        return load("train");
    }

    public static TensorDataset test() throws IOException {
        return load("t10k");
    }

    private static TensorDataset load(String split) throws IOException {
        Path images = dir().resolve(split + "-images-idx3-ubyte.gz");
        Path labels = dir().resolve(split + "-labels-idx1-ubyte.gz");
        for (Path p : new Path[] {images, labels}) {
            if (!Files.isRegularFile(p)) {
                throw new IOException("Fashion-MNIST file " + p + " is missing: install Debian's package"
                        + " (apt-get install dataset-fashion-mnist) or point -Dlora4j.fashionmnist=DIR at the files");
            }
        }
        try (TensorScope s = TensorScope.open()) {
            Tensor x = Idx.read(images);
            Tensor y = Idx.read(labels);
            Tensor inputs = x.reshape(x.size(0), -1).to(DType.FLOAT32).div(255.0).keep();
            Tensor targets = y.to(DType.INT64).keep();
            return new TensorDataset(inputs, targets);
        }
    }
}
