package dev.lora4j.hftools;

import dev.lora4j.DType;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns an ONNX export of a Hugging Face BERT encoder (as {@code torch.onnx.export} writes it:
 * initializers keep HF names, except the Linear weights, stored transposed (in, out) as
 * {@code onnx::MatMul_N} and named by their node, {@code /encoder/layer.0/attention/self/query/MatMul})
 * into a HF checkpoint folder: {@code config.json} + {@code model.safetensors}, so that the one
 * loading path ({@link BertLoader}) serves both. Sizes come from the weights' shapes; the
 * number of heads, {@code layer_norm_eps} and the activation from the graph's constants and ops.
 * Anything it cannot place (an unknown initializer, a MatMul weight whose node name is no HF
 * module, a missing piece) is refused with an {@link IOException} naming it. Stateless,
 * thread-safe.
 */
public final class OnnxBertImporter {

    private static final Pattern MATMUL = Pattern.compile("/((?:embeddings|encoder|pooler)(?:/[A-Za-z0-9_.]+)*)/MatMul");
    private static final Pattern LAYER = Pattern.compile("encoder\\.layer\\.(\\d+)\\..*");

    private OnnxBertImporter() {}

    /** Command line: {@code OnnxBertImporter model.onnx out-dir}. */
    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: OnnxBertImporter MODEL.onnx OUT_DIR");
            System.exit(2);
        }
        BertConfig c = importModel(Path.of(args[0]), Path.of(args[1]));
        System.out.println("wrote " + args[1] + ": " + c.numHiddenLayers() + " layers, hidden " + c.hiddenSize() + ", "
                + c.numAttentionHeads() + " heads");
    }

    /** Reads {@code onnxFile} and writes {@code config.json} and {@code model.safetensors} into {@code outDir}. */
    public static BertConfig importModel(Path onnxFile, Path outDir) throws IOException {
        OnnxGraph g = OnnxGraph.read(Files.readAllBytes(onnxFile));
        Map<String, OnnxGraph.OnnxTensor> weights = new LinkedHashMap<>();
        List<String> unplaced = new ArrayList<>();
        Map<String, String> matmulOwner = new LinkedHashMap<>();
        for (OnnxGraph.Node n : g.nodes) {
            if (!n.opType().equals("MatMul") || n.inputs().size() != 2 || !g.initializers.containsKey(n.inputs().get(1))) continue;
            Matcher m = MATMUL.matcher(n.name());
            if (!m.matches()) {
                unplaced.add(n.inputs().get(1) + " (MatMul node '" + n.name() + "')");
                continue;
            }
            matmulOwner.put(n.inputs().get(1), m.group(1).replace('/', '.') + ".weight");
        }
        for (OnnxGraph.OnnxTensor t : g.initializers.values()) {
            String hf = matmulOwner.get(t.name());
            if (hf != null) {
                if (t.dims().length != 2 || t.dataType() != OnnxGraph.FLOAT) throw new IOException(t.name() + " is not a float matrix");
                weights.put(hf, transposed(t));
            } else if (t.name().equals("embeddings.position_ids")) {
                // HF's position buffer (0..max-1): not a weight.
            } else if (t.name().matches("(embeddings|encoder|pooler)\\..*\\.(weight|bias)") && t.dataType() == OnnxGraph.FLOAT) {
                weights.put(t.name(), t);
            } else {
                unplaced.add(t.name());
            }
        }
        if (!unplaced.isEmpty()) throw new IOException(onnxFile + ": initializers with no place in a HF BERT: " + unplaced);

        BertConfig config = config(g, weights, onnxFile);
        Files.createDirectories(outDir);
        try (var scope = TensorScope.open()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (var e : weights.entrySet()) {
                OnnxGraph.OnnxTensor t = e.getValue();
                if (t.values() == null) throw new IOException(t.name() + " holds no data");
                tensors.put(e.getKey(), Tensor.of(t.values(), t.dims()).to(DType.FLOAT32));
            }
            // The one loading path checks that every key is HF's and every shape fits.
            try (BertModel model = new BertModel(config, tensors.containsKey("pooler.dense.weight"))) {
                model.loadStateDict(tensors, true);
                BertLoader.save(model, config, outDir);
            }
        }
        return config;
    }

    private static OnnxGraph.OnnxTensor transposed(OnnxGraph.OnnxTensor t) {
        int rows = (int) t.dims()[0], cols = (int) t.dims()[1];
        double[] v = new double[rows * cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) v[j * rows + i] = t.values()[i * cols + j];
        return new OnnxGraph.OnnxTensor(t.name(), t.dataType(), new long[] {cols, rows}, v);
    }

    private static BertConfig config(OnnxGraph g, Map<String, OnnxGraph.OnnxTensor> w, Path file) throws IOException {
        long[] word = dims(w, "embeddings.word_embeddings.weight");
        long[] pos = dims(w, "embeddings.position_embeddings.weight");
        long[] types = dims(w, "embeddings.token_type_embeddings.weight");
        long[] inter = dims(w, "encoder.layer.0.intermediate.dense.weight");
        int layers = 0;
        for (String k : w.keySet()) {
            Matcher m = LAYER.matcher(k);
            if (m.matches()) layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
        }
        int hidden = (int) word[1];
        int heads = heads(g, hidden, file);
        double eps = constantInput(g, "/embeddings/LayerNorm/Add", file);
        // The graph stores eps as float32: give back the decimal it came from (1e-12, not 9.99999996e-13).
        eps = Double.parseDouble(Float.toString((float) eps));
        boolean erf = g.nodes.stream().anyMatch(n -> n.name().startsWith("/encoder/layer.0/intermediate/") && n.opType().equals("Erf"));
        boolean tanh = g.nodes.stream().anyMatch(n -> n.name().startsWith("/encoder/layer.0/intermediate/") && n.opType().equals("Tanh"));
        boolean relu = g.nodes.stream().anyMatch(n -> n.name().startsWith("/encoder/layer.0/intermediate/") && n.opType().equals("Relu"));
        String act = erf ? "gelu" : tanh ? "gelu_new" : relu ? "relu" : null;
        if (act == null) throw new IOException(file + ": cannot tell the activation of encoder.layer.0.intermediate (no Erf, Tanh or Relu)");
        return new BertConfig((int) word[0], hidden, layers, heads, (int) inter[0], act, 0.1, 0.1, (int) pos[0], (int) types[0], eps, 0,
                List.of("BertModel"), 2, null);
    }

    /** The head count: the third entry of the shape that splits layer 0's query into heads (batch, seq, heads, head_size). */
    private static int heads(OnnxGraph g, int hidden, Path file) throws IOException {
        for (OnnxGraph.Node n : g.nodes) {
            if (n.name().startsWith("/encoder/layer.0/attention/self/") && n.opType().equals("Concat") && n.inputs().size() == 4) {
                OnnxGraph.OnnxTensor h = constant(g, n.inputs().get(2)), d = constant(g, n.inputs().get(3));
                if (h != null && d != null && h.values() != null && d.values() != null && h.values().length == 1 && d.values().length == 1
                        && h.values()[0] * d.values()[0] == hidden) {
                    return (int) h.values()[0];
                }
            }
        }
        throw new IOException(file + ": cannot find the number of attention heads (no (batch, seq, heads, head_size) reshape in layer 0)");
    }

    private static double constantInput(OnnxGraph g, String node, Path file) throws IOException {
        for (OnnxGraph.Node n : g.nodes) {
            if (n.name().equals(node)) {
                for (String in : n.inputs()) {
                    OnnxGraph.OnnxTensor c = constant(g, in);
                    if (c != null && c.values() != null && c.values().length == 1) return c.values()[0];
                }
            }
        }
        throw new IOException(file + ": no constant input on node '" + node + "' (layer_norm_eps)");
    }

    private static OnnxGraph.OnnxTensor constant(OnnxGraph g, String output) {
        for (OnnxGraph.Node n : g.nodes) {
            if (n.opType().equals("Constant") && n.outputs().contains(output)) return n.value();
        }
        return g.initializers.get(output);
    }

    private static long[] dims(Map<String, OnnxGraph.OnnxTensor> w, String name) throws IOException {
        OnnxGraph.OnnxTensor t = w.get(name);
        if (t == null) throw new IOException("the ONNX export has no '" + name + "'");
        return t.dims();
    }
}
