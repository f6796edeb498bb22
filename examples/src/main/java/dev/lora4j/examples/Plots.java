package dev.lora4j.examples;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.IntStream;
import javax.imageio.ImageIO;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

/** The example programs' charts, drawn with XChart and written as PNG. */
final class Plots {

    private Plots() {}

    /** The pre-training loss curve beside the per-class errors before and after fine-tuning. */
    static void fineTune(Path file, List<Double> loss, long[] wrongBefore, long[] wrongAfter, int worst) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart curve = new XYChartBuilder().width(640).height(420).title("Pre-training loss (mean of 100 batches)")
                .xAxisTitle("batch").yAxisTitle("cross-entropy").build();
        curve.getStyler().setLegendVisible(false).setMarkerSize(0);
        if (loss.isEmpty()) {
            curve.setTitle("Pre-training loss (loaded from cache: not recorded)");
            curve.addSeries("loss", new double[] {0}, new double[] {0});
        } else {
            double[] x = IntStream.range(0, loss.size()).mapToDouble(i -> (i + 1) * 100.0).toArray();
            curve.addSeries("loss", x, loss.stream().mapToDouble(Double::doubleValue).toArray());
        }
        CategoryChart bars = new CategoryChartBuilder().width(640).height(420)
                .title("Test errors per class (fine-tuned on class " + worst + ")").xAxisTitle("class").yAxisTitle("wrong").build();
        bars.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        List<String> classes = IntStream.range(0, 10).mapToObj(Integer::toString).toList();
        bars.addSeries("before", classes, toList(wrongBefore));
        bars.addSeries("after", classes, toList(wrongAfter));
        sideBySide(file, BitmapEncoder.getBufferedImage(curve), BitmapEncoder.getBufferedImage(bars));
    }

    /** Accuracy against rank: a LoRA per rank beside one DyLoRA evaluated at every rank. */
    static void accuracyByRank(Path file, double[] lora, List<String> names, List<double[]> dylora, double base) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(720).height(460).title("Inverted Fashion-MNIST: accuracy by rank")
                .xAxisTitle("rank").yAxisTitle("test accuracy (%)").build();
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideSE);
        double[] ranks = IntStream.rangeClosed(1, lora.length).asDoubleStream().toArray();
        chart.addSeries("LoRA, one run per rank", ranks, java.util.Arrays.stream(lora).map(a -> 100 * a).toArray());
        for (int i = 0; i < names.size(); i++) {
            chart.addSeries("DyLoRA " + names.get(i) + ", one run for all ranks", ranks,
                    java.util.Arrays.stream(dylora.get(i)).map(a -> 100 * a).toArray());
        }
        chart.addSeries("base model, no adapter", ranks, java.util.Arrays.stream(lora).map(a -> 100 * base).toArray())
                .setMarker(org.knowm.xchart.style.markers.SeriesMarkers.NONE);
        BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    /** A text fine-tune: the training loss per step (and its 20-step mean) beside the test accuracy of every class. */
    static void textFineTune(Path file, List<Double> loss, List<String> classes, double[] perClassAccuracy, String title)
            throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart curve = new XYChartBuilder().width(640).height(420).title("Training loss").xAxisTitle("step")
                .yAxisTitle("cross-entropy").build();
        curve.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE).setMarkerSize(0);
        double[] x = IntStream.range(0, Math.max(1, loss.size())).mapToDouble(i -> i + 1).toArray();
        double[] y = loss.isEmpty() ? new double[] {0} : loss.stream().mapToDouble(Double::doubleValue).toArray();
        double[] mean = new double[y.length];
        double sum = 0;
        for (int i = 0; i < y.length; i++) {
            sum += y[i] - (i >= 20 ? y[i - 20] : 0);
            mean[i] = sum / Math.min(i + 1, 20);
        }
        curve.addSeries("per step", x, y).setLineColor(new Color(170, 190, 230));
        curve.addSeries("mean of 20 steps", x, mean).setLineColor(new Color(20, 60, 160));
        CategoryChart bars = new CategoryChartBuilder().width(640).height(420).title(title).xAxisTitle("class")
                .yAxisTitle("test accuracy (%)").build();
        var style = bars.getStyler();
        style.setXAxisLabelRotation(45);
        style.setYAxisMin(0.0);
        style.setYAxisMax(100.0);
        style.setLegendVisible(false);
        bars.addSeries("accuracy", classes, java.util.Arrays.stream(perClassAccuracy).map(a -> Double.isNaN(a) ? 0 : 100 * a)
                .boxed().toList());
        sideBySide(file, BitmapEncoder.getBufferedImage(curve), BitmapEncoder.getBufferedImage(bars));
    }

    private static void sideBySide(Path file, BufferedImage left, BufferedImage right) throws IOException {
        BufferedImage both = new BufferedImage(left.getWidth() + right.getWidth(), Math.max(left.getHeight(), right.getHeight()),
                BufferedImage.TYPE_INT_RGB);
        Graphics2D g = both.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, both.getWidth(), both.getHeight());
        g.drawImage(left, 0, 0, null);
        g.drawImage(right, left.getWidth(), 0, null);
        g.dispose();
        ImageIO.write(both, "png", file.toFile());
    }

    private static List<Long> toList(long[] v) {
        return java.util.Arrays.stream(v).boxed().toList();
    }
}
