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
    /** The whole file: a tensor is read in two passes over its bytes (dims first, then data checked against them). */
    private final byte[] model;

    private OnnxGraph(byte[] model) {
        this.model = model;
    }

    static OnnxGraph read(byte[] model) throws IOException {
        OnnxGraph g = new OnnxGraph(model);
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
                OnnxTensor t = readTensor(in);
                if (initializers.put(t.name(), t) != null) throw new IOException("initializer '" + t.name() + "' appears twice");
            } else {
                in.skipField(tag);
            }
        }
    }

    private Node readNode(CodedInputStream in) throws IOException {
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
    private OnnxTensor readAttributeTensor(CodedInputStream in) throws IOException {
        String name = "";
        OnnxTensor t = null;
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (tag == wire(1, 2)) {
                name = in.readStringRequireUtf8();
            } else if (tag == wire(5, 2)) {
                t = readTensor(in);
            } else {
                in.skipField(tag);
            }
        }
        return "value".equals(name) ? t : null;
    }

    /** Most dimensions a tensor may declare (ONNX models use a handful). */
    private static final int MAX_RANK = 64;

    /**
     * A length-delimited TensorProto at {@code in}'s position, read in two passes over its bytes
     * (protobuf lets fields come in any order): the dims, type and name, then the data, which must
     * hold exactly the number of values the dims declare; list-form data stops at the first value
     * too many, so a file cannot make the reader hold more than the tensor it declares.
     */
    private OnnxTensor readTensor(CodedInputStream in) throws IOException {
        int size = length(in);
        int offset = in.getTotalBytesRead();
        if (size > model.length - offset) throw new IOException("truncated ONNX file: a tensor runs past its end");
        in.skipRawBytes(size);

        long[] dims = new long[4];
        int rank = 0, type = 0;
        String name = "";
        boolean hasRaw = false;
        CodedInputStream first = tensorStream(offset, size);
        for (int tag; (tag = first.readTag()) != 0; ) {
            int field = tag >>> 3, wireType = tag & 7;
            switch (field) {
                case 1 -> {
                    if (wireType != 0 && wireType != 2) throw new IOException("tensor '" + name + "': dims of wire type " + wireType);
                    if (wireType == 2) {
                        int limit = first.pushLimit(length(first));
                        while (first.getBytesUntilLimit() > 0) dims = addDim(dims, rank++, first.readInt64(), name);
                        first.popLimit(limit);
                    } else {
                        dims = addDim(dims, rank++, first.readInt64(), name);
                    }
                }
                case 2 -> type = first.readInt32();
                case 8 -> name = first.readStringRequireUtf8();
                case 9 -> {
                    hasRaw = true;
                    first.skipField(tag);
                }
                case 13, 14 -> throw new IOException("tensor '" + name + "' keeps its data outside the file (external data): not supported");
                default -> first.skipField(tag);
            }
        }
        long[] shape = java.util.Arrays.copyOf(dims, rank);
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IOException("tensor '" + name + "' has a negative dimension");
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IOException("tensor '" + name + "' has dims " + java.util.Arrays.toString(shape) + " whose product overflows");
            }
        }

        CodedInputStream second = tensorStream(offset, size);
        if (hasRaw) {
            int width = switch (type) {
                case FLOAT -> 4;
                case INT64, DOUBLE -> 8;
                default -> 0;
            };
            if (width == 0) return new OnnxTensor(name, type, shape, null);
            ByteBuffer raw = null;
            for (int tag; (tag = second.readTag()) != 0; ) {
                if (tag == wire(9, 2)) {
                    int len = length(second);
                    int at = offset + second.getTotalBytesRead();
                    second.skipRawBytes(len);
                    raw = ByteBuffer.wrap(model, at, len).slice().order(ByteOrder.LITTLE_ENDIAN); // the last one wins, as in protobuf
                } else {
                    second.skipField(tag);
                }
            }
            if (raw == null) throw new IOException("tensor '" + name + "': raw_data of the wrong wire type");
            if (n > Integer.MAX_VALUE / 8 || raw.remaining() != n * width) {
                throw new IOException("tensor '" + name + "' declares " + n + " elements but holds " + raw.remaining() + " bytes");
            }
            double[] values = new double[(int) n];
            for (int i = 0; i < n; i++) {
                values[i] = switch (type) {
                    case FLOAT -> raw.getFloat();
                    case INT64 -> raw.getLong();
                    default -> raw.getDouble();
                };
            }
            return new OnnxTensor(name, type, shape, values);
        }
        // List-form data: at least one byte a value, so more values than the tensor has bytes cannot match.
        long declared = n;
        String tensorName = name;
        double[][] values = {null};
        int[] count = {0};
        Value add = v -> {
            if (values[0] == null) {
                if (declared > size) {
                    throw new IOException("tensor '" + tensorName + "' declares " + declared + " elements but holds at most " + size + " bytes");
                }
                values[0] = new double[(int) declared];
            }
            if (count[0] == declared) throw new IOException("tensor '" + tensorName + "' declares " + declared + " elements but holds more");
            values[0][count[0]++] = v;
        };
        for (int tag; (tag = second.readTag()) != 0; ) {
            int field = tag >>> 3, wireType = tag & 7;
            switch (field) {
                case 4 -> readRepeated(second, wireType, () -> add.accept(second.readFloat()));
                case 7 -> readRepeated(second, wireType, () -> add.accept((double) second.readInt64()));
                case 10 -> readRepeated(second, wireType, () -> add.accept(second.readDouble()));
                default -> second.skipField(tag);
            }
        }
        if (values[0] == null) return new OnnxTensor(name, type, shape, n == 0 ? new double[0] : null);
        if (count[0] != n) throw new IOException("tensor '" + name + "' declares " + n + " elements but holds " + count[0]);
        return new OnnxTensor(name, type, shape, values[0]);
    }

    private interface Value {
        void accept(double v) throws IOException;
    }

    private CodedInputStream tensorStream(int offset, int size) {
        CodedInputStream t = CodedInputStream.newInstance(model, offset, size);
        t.setSizeLimit(Integer.MAX_VALUE);
        t.setRecursionLimit(64);
        return t;
    }

    private static long[] addDim(long[] dims, int rank, long d, String name) throws IOException {
        if (rank == MAX_RANK) throw new IOException("tensor '" + name + "' has more than " + MAX_RANK + " dimensions");
        if (rank == dims.length) dims = java.util.Arrays.copyOf(dims, dims.length * 2);
        dims[rank] = d;
        return dims;
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
