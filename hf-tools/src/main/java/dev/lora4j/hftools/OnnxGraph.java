package dev.lora4j.hftools;

import com.google.protobuf.CodedInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of an ONNX model that an importer needs, read straight from protobuf's wire format
 * (no generated ONNX classes): the graph's nodes (name, op type, inputs, outputs, tensor
 * attributes of {@code Constant} nodes) and its initializers. Field numbers are those of
 * onnx.proto: ModelProto.graph = 7; GraphProto.node = 1, initializer = 5; NodeProto input = 1,
 * output = 2, name = 3, op_type = 4, attribute = 5; AttributeProto name = 1, t = 5; TensorProto
 * dims = 1, data_type = 2, float_data = 4, int64_data = 7, name = 8, raw_data = 9,
 * double_data = 10.
 *
 * <p>The file is untrusted: sizes are checked against the data present before anything is
 * allocated, and a malformed file is an {@link IOException} naming what was wrong. Immutable
 * once read; thread-safe.
 */
final class OnnxGraph {

    /** ONNX TensorProto.DataType codes this reader converts. */
    static final int FLOAT = 1, INT64 = 7, DOUBLE = 11;

    /** A tensor: its ONNX data type, dims and values widened to double (float and int64 exactly). */
    record OnnxTensor(String name, int dataType, long[] dims, double[] values) {
        long numel() {
            long n = 1;
            for (long d : dims) n *= d;
            return n;
        }
    }

    record Node(String name, String opType, List<String> inputs, List<String> outputs, OnnxTensor value) {}

    final List<Node> nodes = new ArrayList<>();
    final Map<String, OnnxTensor> initializers = new LinkedHashMap<>();

    static OnnxGraph read(byte[] model) throws IOException {
        OnnxGraph g = new OnnxGraph();
        CodedInputStream in = CodedInputStream.newInstance(model);
        in.setSizeLimit(Integer.MAX_VALUE);
        in.setRecursionLimit(64);
        boolean sawGraph = false;
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (tag == wire(7, 2)) {
                int limit = in.pushLimit(length(in));
                g.readGraph(in);
                in.popLimit(limit);
                sawGraph = true;
            } else {
                in.skipField(tag);
            }
        }
        if (!sawGraph) throw new IOException("not an ONNX model: no graph (ModelProto field 7)");
        return g;
    }

    private void readGraph(CodedInputStream in) throws IOException {
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (tag == wire(1, 2)) {
                int limit = in.pushLimit(length(in));
                nodes.add(readNode(in));
                in.popLimit(limit);
            } else if (tag == wire(5, 2)) {
                int limit = in.pushLimit(length(in));
                OnnxTensor t = readTensor(in);
                in.popLimit(limit);
                if (initializers.put(t.name(), t) != null) throw new IOException("initializer '" + t.name() + "' appears twice");
            } else {
                in.skipField(tag);
            }
        }
    }

    private static Node readNode(CodedInputStream in) throws IOException {
        List<String> inputs = new ArrayList<>(), outputs = new ArrayList<>();
        String name = "", op = "";
        OnnxTensor value = null;
        for (int tag; (tag = in.readTag()) != 0; ) {
            switch (tag >>> 3) {
                case 1 -> inputs.add(in.readStringRequireUtf8());
                case 2 -> outputs.add(in.readStringRequireUtf8());
                case 3 -> name = in.readStringRequireUtf8();
                case 4 -> op = in.readStringRequireUtf8();
                case 5 -> {
                    int limit = in.pushLimit(length(in));
                    OnnxTensor t = readAttributeTensor(in);
                    in.popLimit(limit);
                    if (t != null) value = t;
                }
                default -> in.skipField(tag);
            }
        }
        return new Node(name, op, List.copyOf(inputs), List.copyOf(outputs), value);
    }

    /** The tensor of an attribute named "value" (a Constant node's), or null. */
    private static OnnxTensor readAttributeTensor(CodedInputStream in) throws IOException {
        String name = "";
        OnnxTensor t = null;
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (tag == wire(1, 2)) {
                name = in.readStringRequireUtf8();
            } else if (tag == wire(5, 2)) {
                int limit = in.pushLimit(length(in));
                t = readTensor(in);
                in.popLimit(limit);
            } else {
                in.skipField(tag);
            }
        }
        return "value".equals(name) ? t : null;
    }

    private static OnnxTensor readTensor(CodedInputStream in) throws IOException {
        List<Long> dims = new ArrayList<>();
        int type = 0;
        String name = "";
        byte[] raw = null;
        List<Double> typed = new ArrayList<>();
        for (int tag; (tag = in.readTag()) != 0; ) {
            int field = tag >>> 3, wireType = tag & 7;
            switch (field) {
                case 1 -> readRepeated(in, wireType, () -> dims.add(in.readInt64()));
                case 2 -> type = in.readInt32();
                case 4 -> readRepeated(in, wireType, () -> typed.add((double) in.readFloat()));
                case 7 -> readRepeated(in, wireType, () -> typed.add((double) in.readInt64()));
                case 10 -> readRepeated(in, wireType, () -> typed.add(in.readDouble()));
                case 8 -> name = in.readStringRequireUtf8();
                case 9 -> raw = in.readByteArray();
                case 13, 14 -> throw new IOException("tensor '" + name + "' keeps its data outside the file (external data): not supported");
                default -> in.skipField(tag);
            }
        }
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IOException("tensor '" + name + "' has a negative dimension");
            n = Math.multiplyExact(n, d);
        }
        double[] values;
        if (raw != null) {
            int size = switch (type) {
                case FLOAT -> 4;
                case INT64, DOUBLE -> 8;
                default -> 0;
            };
            if (size == 0) return new OnnxTensor(name, type, shape, null);
            if (n > Integer.MAX_VALUE || raw.length != n * size) {
                throw new IOException("tensor '" + name + "' declares " + n + " elements but holds " + raw.length + " bytes");
            }
            ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
            values = new double[(int) n];
            for (int i = 0; i < n; i++) {
                values[i] = switch (type) {
                    case FLOAT -> b.getFloat();
                    case INT64 -> b.getLong();
                    default -> b.getDouble();
                };
            }
        } else {
            if (typed.size() != n && !typed.isEmpty()) {
                throw new IOException("tensor '" + name + "' declares " + n + " elements but holds " + typed.size());
            }
            values = typed.isEmpty() && n > 0 ? null : typed.stream().mapToDouble(Double::doubleValue).toArray();
        }
        return new OnnxTensor(name, type, shape, values);
    }

    private interface Reader {
        void read() throws IOException;
    }

    /** A repeated scalar field, packed (wire type 2) or not. */
    private static void readRepeated(CodedInputStream in, int wireType, Reader one) throws IOException {
        if (wireType == 2) {
            int limit = in.pushLimit(length(in));
            while (in.getBytesUntilLimit() > 0) one.read();
            in.popLimit(limit);
        } else {
            one.read();
        }
    }

    private static int length(CodedInputStream in) throws IOException {
        int n = in.readRawVarint32();
        if (n < 0) throw new IOException("negative length in ONNX file");
        return n;
    }

    private static int wire(int field, int type) {
        return field << 3 | type;
    }
}
