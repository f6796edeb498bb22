package dev.lora4j.hftools;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import dev.lora4j.Tensor;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertModel;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.*;

/** Writes tiny BERT ONNX graphs as torch.onnx.export lays them out (HF names, transposed MatMul weights), for tests to spoil. */
final class TinyOnnx {
    public record T(String name, int type, long[] dims, byte[] raw, float[] floatData, long[] int64Data) {}
    public record N(String name, String op, List<String> in, List<String> out, T value) {}

    public List<T> inits = new ArrayList<>();
    public List<N> nodes = new ArrayList<>();

    public static byte[] f32(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) b.putFloat(x);
        return b.array();
    }
    public static byte[] i64(long[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long x : v) b.putLong(x);
        return b.array();
    }

    static TinyOnnx tiny(BertConfig c, boolean pooler, long heads, long headSize, float eps, String actOp) {
        TinyOnnx g = new TinyOnnx();
        int mm = 0;
        try (var sc = dev.lora4j.TensorScope.open(); BertModel m = new BertModel(c, pooler)) {
            for (var e : m.stateDict().entrySet()) {
                String k = e.getKey();
                Tensor t = e.getValue();
                long[] shape = t.shape();
                float[] v = toFloats(t);
                if (k.equals("embeddings.position_ids")) continue;
                if (shape.length == 2 && !k.startsWith("embeddings.")) {
                    int rows = (int) shape[0], cols = (int) shape[1];
                    float[] tr = new float[v.length];
                    for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) tr[j * rows + i] = v[i * cols + j];
                    String name = "onnx::MatMul_" + (mm++);
                    g.inits.add(new T(name, 1, new long[] {cols, rows}, f32(tr), null, null));
                    String mod = k.substring(0, k.length() - ".weight".length());
                    String node = "/" + mod.replaceAll("\\.(?!\\d)", "/") + "/MatMul";
                    g.nodes.add(new N(node, "MatMul", List.of("x" + mm, name), List.of("y" + mm), null));
                } else {
                    g.inits.add(new T(k, 1, shape, f32(v), null, null));
                }
            }
        }
        g.nodes.add(new N("/encoder/layer.0/attention/self/Constant_h", "Constant", List.of(), List.of("h"),
                new T("", 7, new long[] {1}, i64(new long[] {heads}), null, null)));
        g.nodes.add(new N("/encoder/layer.0/attention/self/Constant_d", "Constant", List.of(), List.of("d"),
                new T("", 7, new long[] {1}, i64(new long[] {headSize}), null, null)));
        g.nodes.add(new N("/encoder/layer.0/attention/self/Concat", "Concat", List.of("a", "b", "h", "d"), List.of("shape"), null));
        g.nodes.add(new N("/embeddings/LayerNorm/Constant", "Constant", List.of(), List.of("eps"),
                new T("", 1, new long[] {}, f32(new float[] {eps}), null, null)));
        g.nodes.add(new N("/embeddings/LayerNorm/Add", "Add", List.of("var", "eps"), List.of("v2"), null));
        g.nodes.add(new N("/encoder/layer.0/intermediate/intermediate_act_fn/" + actOp, actOp, List.of("z"), List.of("z2"), null));
        return g;
    }

    static float[] toFloats(Tensor t) {
        double[] d = t.toDoubleArray();
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    public static byte[] tensor(T t) throws IOException {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        CodedOutputStream c = CodedOutputStream.newInstance(o);
        for (long d : t.dims()) c.writeInt64(1, d);
        c.writeInt32(2, t.type());
        if (t.floatData() != null) for (float f : t.floatData()) c.writeFloat(4, f);
        if (t.int64Data() != null) for (long l : t.int64Data()) c.writeInt64(7, l);
        c.writeString(8, t.name());
        if (t.raw() != null) c.writeBytes(9, ByteString.copyFrom(t.raw()));
        c.flush();
        return o.toByteArray();
    }

    public byte[] bytes() throws IOException {
        ByteArrayOutputStream go = new ByteArrayOutputStream();
        CodedOutputStream gc = CodedOutputStream.newInstance(go);
        for (N n : nodes) {
            ByteArrayOutputStream no = new ByteArrayOutputStream();
            CodedOutputStream nc = CodedOutputStream.newInstance(no);
            for (String s : n.in()) nc.writeString(1, s);
            for (String s : n.out()) nc.writeString(2, s);
            nc.writeString(3, n.name());
            nc.writeString(4, n.op());
            if (n.value() != null) {
                ByteArrayOutputStream ao = new ByteArrayOutputStream();
                CodedOutputStream ac = CodedOutputStream.newInstance(ao);
                ac.writeString(1, "value");
                ac.writeByteArray(5, tensor(n.value()));
                ac.flush();
                nc.writeByteArray(5, ao.toByteArray());
            }
            nc.flush();
            gc.writeByteArray(1, no.toByteArray());
        }
        for (T t : inits) gc.writeByteArray(5, tensor(t));
        gc.flush();
        ByteArrayOutputStream mo = new ByteArrayOutputStream();
        CodedOutputStream mc = CodedOutputStream.newInstance(mo);
        mc.writeInt64(1, 8);
        mc.writeByteArray(7, go.toByteArray());
        mc.flush();
        return mo.toByteArray();
    }
}
