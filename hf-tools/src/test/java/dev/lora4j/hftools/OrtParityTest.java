package dev.lora4j.hftools;

import static org.junit.jupiter.api.Assertions.*;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertLoader;
import dev.lora4j.models.bert.BertModel;
import dev.lora4j.models.bert.SentenceEmbeddings;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * all-MiniLM-L6-v2, imported from its ONNX export into a HF checkpoint and run by lora4j's
 * BertModel, against ONNX Runtime running the very same ONNX file: last_hidden_state within
 * 1e-4 on real sentences of varied lengths with padding, and sentence-embedding similarities
 * that order paraphrase / non-paraphrase pairs as ORT's do.
 */
class OrtParityTest {

    static final List<String> SENTENCES = List.of(
            "A man is playing a guitar.",
            "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
            "Hi!",
            "Résumé writing is an art: café owners, naïve students and über-busy engineers all struggle with it.",
            "What is the capital of France?",
            "Paris is the capital and most populous city of France, with an estimated population of over two million residents.",
            "Stock markets fell sharply on Tuesday after the central bank raised interest rates by half a percentage point.",
            "I love this movie.");

    static OrtEnvironment env;
    static OrtSession ort;
    static BertModel bert;
    static BertTokenizer tokenizer;

    @BeforeAll
    static void load() throws Exception {
        env = OrtEnvironment.getEnvironment();
        ort = env.createSession(MiniLm.onnx().toString(), new OrtSession.SessionOptions());
        bert = BertLoader.bertModel(MiniLm.hf());
        tokenizer = BertTokenizer.fromFile(MiniLm.tokenizer(), 128);
    }

    @AfterAll
    static void close() throws Exception {
        ort.close();
        bert.close();
        tokenizer.close();
    }

    /** ORT's last_hidden_state for a tokenized batch. */
    static float[][][] ortHidden(BertTokenizer.Batch b) throws Exception {
        long[] shape = b.inputIds().shape();
        try (OnnxTensor ids = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(b.inputIds().toLongArray()), shape);
             OnnxTensor mask = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(b.attentionMask().toLongArray()), shape);
             OnnxTensor types = OnnxTensor.createTensor(env, java.nio.LongBuffer.wrap(b.tokenTypeIds().toLongArray()), shape);
             OrtSession.Result r = ort.run(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types))) {
            return (float[][][]) r.get(0).getValue();
        }
    }

    @Test
    void importerWritesHuggingFacesConfigAndKeys() throws Exception {
        var json = new ObjectMapper().readTree(Files.readString(MiniLm.hf().resolve("config.json")));
        assertEquals(384, json.get("hidden_size").asInt());
        assertEquals(6, json.get("num_hidden_layers").asInt());
        assertEquals(12, json.get("num_attention_heads").asInt());
        assertEquals(1536, json.get("intermediate_size").asInt());
        assertEquals(30522, json.get("vocab_size").asInt());
        assertEquals(1e-12, json.get("layer_norm_eps").asDouble());
        assertEquals("gelu", json.get("hidden_act").asText());
        BertConfig c = BertConfig.fromJson(Files.readString(MiniLm.hf().resolve("config.json")));
        assertEquals(32, c.headSize());
        try (var scope = TensorScope.open()) {
            var keys = bert.stateDict().keySet();
            assertEquals(5 + 6 * 16, keys.size());
            assertTrue(keys.contains("encoder.layer.5.attention.self.query.weight"));
            assertTrue(keys.contains("encoder.layer.0.attention.output.LayerNorm.bias"));
            // Linear weights are (out, in) after the transpose: intermediate 384 -> 1536.
            assertArrayEquals(new long[] {1536, 384}, bert.stateDict().get("encoder.layer.0.intermediate.dense.weight").shape());
        }
        assertEquals(384 * 30522 + 512 * 384 + 2 * 384 + 2 * 384
                + 6L * (4 * (384 * 384 + 384) + 2 * 384 + (1536 * 384 + 1536) + (384 * 1536 + 384) + 2 * 384), bert.parameterCount());
    }

    @Test
    void lastHiddenStateMatchesOnnxRuntimeWithPadding() throws Exception {
        try (var scope = TensorScope.open()) {
            BertTokenizer.Batch b = tokenizer.encode(SENTENCES);
            long[] shape = b.inputIds().shape();
            long padded = java.util.Arrays.stream(b.attentionMask().toLongArray()).filter(x -> x == 0).count();
            assertTrue(padded > 50, "the batch must contain padding, has " + padded + " pad tokens");
            float[][][] want = ortHidden(b);
            float[] got;
            try (var ng = dev.lora4j.Torch.noGrad()) { // inference: the shim's attention loop
                got = bert.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()).toFloatArray();
            }
            // With gradients (training): LibTorch's autograd-aware attention; both must match ORT.
            float[] withGrad = bert.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()).detach().toFloatArray();
            double worst = 0, worstGrad = 0;
            int dim = 384;
            long[] mask = b.attentionMask().toLongArray();
            for (int i = 0; i < shape[0]; i++) {
                for (int t = 0; t < shape[1]; t++) {
                    for (int d = 0; d < dim; d++) {
                        double diff = Math.abs(want[i][t][d] - got[(int) ((i * shape[1] + t) * dim + d)]);
                        worst = Math.max(worst, diff);
                        worstGrad = Math.max(worstGrad, Math.abs(want[i][t][d] - withGrad[(int) ((i * shape[1] + t) * dim + d)]));
                    }
                }
            }
            System.out.println("max |lora4j - ORT| on last_hidden_state: " + worst + " (inference), " + worstGrad + " (grad mode)");
            assertTrue(worst <= 1e-4, "max |lora4j - ORT| over all tokens (padding included) = " + worst);
            assertTrue(worstGrad <= 1e-4, "max |lora4j - ORT| with gradients on = " + worstGrad);
            assertTrue(mask.length == shape[0] * shape[1]);
        }
    }

    /** {@code skipPadding}: the encoder on the real tokens alone matches ORT there, with and without gradients; padding is zero. */
    @Test
    void skippingPaddingMatchesOnnxRuntimeOnRealTokens() throws Exception {
        try (var scope = TensorScope.open()) {
            BertTokenizer.Batch b = tokenizer.encode(SENTENCES);
            long[] shape = b.inputIds().shape();
            long[] mask = b.attentionMask().toLongArray();
            float[][][] want = ortHidden(b);
            float[] got, withGrad;
            bert.skipPadding(true);
            try {
                try (var ng = dev.lora4j.Torch.noGrad()) {
                    got = bert.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()).toFloatArray();
                }
                withGrad = bert.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()).detach().toFloatArray();
            } finally {
                bert.skipPadding(false);
            }
            int dim = 384, real = 0;
            double worst = 0;
            for (int i = 0; i < shape[0]; i++) {
                for (int t = 0; t < shape[1]; t++) {
                    boolean isReal = mask[(int) (i * shape[1] + t)] != 0;
                    if (isReal) real++;
                    for (int d = 0; d < dim; d++) {
                        int k = (int) ((i * shape[1] + t) * dim + d);
                        if (isReal) {
                            worst = Math.max(worst, Math.max(Math.abs(want[i][t][d] - got[k]), Math.abs(want[i][t][d] - withGrad[k])));
                        } else {
                            assertEquals(0f, got[k], "padded position " + i + "," + t);
                            assertEquals(0f, withGrad[k], "padded position " + i + "," + t);
                        }
                    }
                }
            }
            System.out.println("skipPadding: max |lora4j - ORT| on " + real + " real tokens: " + worst);
            assertTrue(real < shape[0] * shape[1], "the batch must contain padding");
            assertTrue(worst <= 1e-4, "max |lora4j - ORT| over the real tokens = " + worst);
        }
    }

    @Test
    void sentenceSimilaritiesOrderPairsAsOnnxRuntimeDoes() throws Exception {
        List<String> pairs = List.of(
                "A man is playing a guitar.", "Someone is playing an instrument.",
                "A man is playing a guitar.", "The stock market crashed today.",
                "How do I bake bread at home?", "What is a good recipe for homemade bread?",
                "How do I bake bread at home?", "The cat slept on the warm windowsill.",
                "The weather is lovely today.", "It is sunny and warm outside.",
                "The weather is lovely today.", "He repaired the engine of his old car.");
        try (var scope = TensorScope.open()) {
            BertTokenizer.Batch b = tokenizer.encode(pairs);
            Tensor ours = SentenceEmbeddings.encode(bert.forward(b.inputIds(), b.attentionMask(), b.tokenTypeIds()), b.attentionMask());
            float[][][] h = ortHidden(b);
            long seq = b.inputIds().size(1);
            Tensor ortHidden = Tensor.of(flatten(h), pairs.size(), seq, 384);
            Tensor theirs = SentenceEmbeddings.encode(ortHidden, b.attentionMask());
            double[] simOurs = cosines(ours.toFloatArray()), simOrt = cosines(theirs.toFloatArray());
            for (int p = 0; p < simOurs.length; p++) assertEquals(simOrt[p], simOurs[p], 1e-4, "pair " + p);
            for (int p = 0; p < simOurs.length; p += 2) {
                assertTrue(simOurs[p] > simOurs[p + 1] + 0.2, "paraphrase pair " + p / 2 + " (" + simOurs[p]
                        + ") must beat the unrelated pair (" + simOurs[p + 1] + ")");
                assertEquals(simOrt[p] > simOrt[p + 1], simOurs[p] > simOurs[p + 1]);
            }
            // Embeddings are unit vectors.
            float[] e = ours.toFloatArray();
            double n = 0;
            for (int d = 0; d < 384; d++) n += e[d] * e[d];
            assertEquals(1.0, n, 1e-5);
        }
    }

    private static float[] flatten(float[][][] a) {
        float[] out = new float[a.length * a[0].length * a[0][0].length];
        int k = 0;
        for (float[][] x : a) for (float[] y : x) for (float v : y) out[k++] = v;
        return out;
    }

    /** Cosine of each consecutive pair (0,1), (2,3), ... of unit rows of dim 384. */
    private static double[] cosines(float[] e) {
        int n = e.length / 384;
        double[] c = new double[n / 2];
        for (int p = 0; p < n / 2; p++) {
            double dot = 0;
            for (int d = 0; d < 384; d++) dot += e[2 * p * 384 + d] * e[(2 * p + 1) * 384 + d];
            c[p] = dot;
        }
        return c;
    }

    @Test
    void tokenizerLowerCasesStripsAccentsAndAddsSpecialTokens() {
        assertArrayEquals(new String[] {"[CLS]", "resume", "cafe", "[SEP]"}, tokenizer.tokens("Résumé CAFÉ"));
        long[] ids = tokenizer.ids("hello world");
        assertEquals(101, ids[0]);
        assertEquals(102, ids[ids.length - 1]);
        assertArrayEquals(new long[] {101, 7592, 2088, 102}, ids);
    }
}
