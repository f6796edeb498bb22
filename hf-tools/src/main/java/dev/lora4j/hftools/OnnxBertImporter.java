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
    private static final Pattern LAYER = Pattern.compile("encoder\\.layer\\.(\\d+)\\.(.*)");
    /** The weights of one HF BERT layer, after {@code encoder.layer.N.}. */
    private static final List<String> LAYER_KEYS = List.of(
            "attention.self.query.weight", "attention.self.query.bias",
            "attention.self.key.weight", "attention.self.key.bias",
            "attention.self.value.weight", "attention.self.value.bias",
            "attention.output.dense.weight", "attention.output.dense.bias",
            "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
            "intermediate.dense.weight", "intermediate.dense.bias",
            "output.dense.weight", "output.dense.bias",
            "output.LayerNorm.weight", "output.LayerNorm.bias");
    /** Most names an error message lists. */
    private static final int LISTED = 20;

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
                if (t.values() == null) throw new IOException(onnxFile + ": MatMul weight " + t.name() + " (" + hf + ") holds no data");
                weights.put(hf, transposed(t));
            } else if (t.name().equals("embeddings.position_ids")) {
                // HF's position buffer (0..max-1): not a weight.
            } else if (t.name().matches("(embeddings|encoder|pooler)\\..*\\.(weight|bias)") && t.dataType() == OnnxGraph.FLOAT) {
                weights.put(t.name(), t);
            } else {
                unplaced.add(t.name());
            }
        }
        if (!unplaced.isEmpty()) throw new IOException(onnxFile + ": initializers with no place in a HF BERT: " + clip(unplaced));

        BertConfig config = config(g, weights, onnxFile);
        checkShapes(config, weights, onnxFile);
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
        int layers = layers(w, file);
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

    /** A matrix's dims, each a positive int. */
    private static long[] dims(Map<String, OnnxGraph.OnnxTensor> w, String name) throws IOException {
        OnnxGraph.OnnxTensor t = w.get(name);
        if (t == null) throw new IOException("the ONNX export has no '" + name + "'");
        long[] d = t.dims();
        if (d.length != 2 || d[0] < 1 || d[1] < 1 || d[0] > Integer.MAX_VALUE || d[1] > Integer.MAX_VALUE) {
            throw new IOException("'" + name + "' has dims " + java.util.Arrays.toString(d) + ", not a matrix");
        }
        return d;
    }

    /**
     * The number of layers: the layers named must be exactly 0..L-1, each with every weight of a HF
     * BERT layer and nothing else, before a model of that depth is built.
     */
    private static int layers(Map<String, OnnxGraph.OnnxTensor> w, Path file) throws IOException {
        java.util.TreeMap<Integer, java.util.Set<String>> byLayer = new java.util.TreeMap<>();
        for (String k : w.keySet()) {
            Matcher m = LAYER.matcher(k);
            if (!m.matches()) continue;
            String digits = m.group(1);
            int index;
            if (digits.length() > 9 || (digits.length() > 1 && digits.charAt(0) == '0')) index = -1;
            else index = Integer.parseInt(digits);
            if (index < 0 || index >= w.size()) throw new IOException(file + ": '" + k + "' names layer " + digits + ", beyond the layers the file holds");
            byLayer.computeIfAbsent(index, i -> new java.util.HashSet<>()).add(m.group(2));
        }
        int layers = byLayer.isEmpty() ? 0 : byLayer.lastKey() + 1;
        List<String> missing = new ArrayList<>(), extra = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            java.util.Set<String> have = byLayer.getOrDefault(i, java.util.Set.of());
            for (String key : LAYER_KEYS) if (!have.contains(key)) missing.add("encoder.layer." + i + "." + key);
            for (String key : have) if (!LAYER_KEYS.contains(key)) extra.add("encoder.layer." + i + "." + key);
        }
        if (!missing.isEmpty() || !extra.isEmpty()) {
            throw new IOException(file + ": the layers named (" + layers + ": 0.." + (layers - 1) + ") are not complete HF BERT layers"
                    + (missing.isEmpty() ? "" : "; missing " + clip(missing)) + (extra.isEmpty() ? "" : "; unknown " + clip(extra)));
        }
        return layers;
    }

    /** Every weight's shape against the config, before a model of that size is built. */
    private static void checkShapes(BertConfig c, Map<String, OnnxGraph.OnnxTensor> w, Path file) throws IOException {
        long h = c.hiddenSize(), in = c.intermediateSize();
        Map<String, long[]> expected = new LinkedHashMap<>();
        expected.put("embeddings.word_embeddings.weight", new long[] {c.vocabSize(), h});
        expected.put("embeddings.position_embeddings.weight", new long[] {c.maxPositionEmbeddings(), h});
        expected.put("embeddings.token_type_embeddings.weight", new long[] {c.typeVocabSize(), h});
        expected.put("embeddings.LayerNorm.weight", new long[] {h});
        expected.put("embeddings.LayerNorm.bias", new long[] {h});
        expected.put("pooler.dense.weight", new long[] {h, h});
        expected.put("pooler.dense.bias", new long[] {h});
        List<String> wrong = new ArrayList<>();
        for (var e : w.entrySet()) {
            String k = e.getKey();
            long[] want = expected.get(k);
            Matcher m = LAYER.matcher(k);
            if (want == null && m.matches()) {
                String key = m.group(2);
                want = key.startsWith("intermediate.dense.") ? (key.endsWith("weight") ? new long[] {in, h} : new long[] {in})
                        : key.equals("output.dense.weight") ? new long[] {h, in}
                        : key.endsWith(".weight") && !key.contains("LayerNorm") ? new long[] {h, h} : new long[] {h};
            }
            if (want == null) continue; // the strict load names keys BERT does not have
            if (!java.util.Arrays.equals(want, e.getValue().dims())) {
                wrong.add(k + " " + java.util.Arrays.toString(e.getValue().dims()) + " (expected " + java.util.Arrays.toString(want) + ")");
            }
        }
        if (!wrong.isEmpty()) throw new IOException(file + ": weights whose shape does not fit the config: " + clip(wrong));
    }

    /** The first names of a list, and how many more. */
    static String clip(List<String> names) {
        if (names.size() <= LISTED) return names.toString();
        return names.subList(0, LISTED) + " and " + (names.size() - LISTED) + " more";
    }
}
