package dev.lora4j.examples.text;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import java.util.function.Function;
import java.util.stream.IntStream;

/**
 * Accuracy and per-class accuracy of a classifier on a labelled split, from the argmax of its
 * logits computed in batches without gradients. A value: its arrays are its own (nobody else
 * holds them) and are not to be changed; safe to share between threads once built.
 *
 * @param accuracy the fraction of rows predicted right
 * @param perClass per class: the fraction of that class's rows predicted right (NaN for a class with no row)
 * @param predictions the predicted class of every row
 */
public record Evaluation(double accuracy, double[] perClass, long[] predictions) {

    /** The logits of a batch of rows (a tensor (rows, classes) that the caller frees). */
    @FunctionalInterface
    public interface Logits extends Function<int[], Tensor> {}

    /** Evaluates {@code logits} over rows 0..n-1 of a split with {@code labels}, {@code batch} rows at a time. */
    public static Evaluation of(Logits logits, long[] labels, int numClasses, int batch) {
        try (Tensor all = logits(logits, labels.length, batch)) {
            return of(all, labels, numClasses);
        }
    }

    /** Scores logits (n, classes) against {@code labels}. */
    public static Evaluation of(Tensor logits, long[] labels, int numClasses) {
        try (Tensor predicted = logits.argmax(1)) {
            return of(predicted.toLongArray(), labels, numClasses);
        }
    }

    /** The logits (n, classes) of rows 0..n-1, computed {@code batch} rows at a time without gradients; the caller owns them. */
    public static Tensor logits(Logits logits, int n, int batch) {
        if (n < 1) throw new IllegalArgumentException("n must be >= 1, got " + n);
        try (var noGrad = Torch.noGrad(); TensorScope scope = TensorScope.open()) {
            java.util.List<Tensor> parts = new java.util.ArrayList<>();
            for (int start = 0; start < n; start += batch) {
                parts.add(logits.apply(IntStream.range(start, Math.min(n, start + batch)).toArray()));
            }
            return Tensor.cat(parts, 0).keep();
        }
    }

    /** Scores {@code predicted} against {@code labels}. */
    public static Evaluation of(long[] predicted, long[] labels, int numClasses) {
        if (predicted.length != labels.length) throw new IllegalArgumentException("predicted and labels differ in length");
        long[] right = new long[numClasses];
        long[] count = new long[numClasses];
        long all = 0;
        for (int i = 0; i < labels.length; i++) {
            int c = (int) labels[i];
            count[c]++;
            if (predicted[i] == labels[i]) {
                right[c]++;
                all++;
            }
        }
        double[] perClass = new double[numClasses];
        for (int c = 0; c < numClasses; c++) perClass[c] = count[c] == 0 ? Double.NaN : (double) right[c] / count[c];
        return new Evaluation(labels.length == 0 ? Double.NaN : (double) all / labels.length, perClass, predicted);
    }
}
