package dev.lora4j.benchmarks.mixed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.lora.AdapterBank;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.nn.Functional;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The two mixed-batch algorithms lora4j's fused kernel is compared with, written on lora4j's
 * Tensor API (the same LibTorch underneath) so that only the algorithm differs. Both take x
 * (batch, ..., in) whose batch row i uses adapter {@code rows[i]} and return the LoRA update
 * (batch, ..., out); inference only.
 */
final class MixedAlgorithms {

    private MixedAlgorithms() {}

    /**
     * PEFT's {@code LoraLayer._mixed_batch_forward}: for each distinct adapter, select its rows,
     * {@code lora_B(lora_A(x_sub)) · scale}, and put the result back at those rows. PEFT writes
     * back with an indexed add per adapter; the Tensor API has no {@code index_add_}, so the
     * pieces are concatenated and put in row order with one {@code index_select} (one copy of
     * the update, as PEFT's per-adapter adds are).
     */
    static Tensor peftLoop(Tensor x, String[] rows, LoraLinear layer) {
        Map<String, List<Long>> groups = new LinkedHashMap<>();
        for (int i = 0; i < rows.length; i++) {
            if (!rows[i].equals(AdapterBank.BASE)) groups.computeIfAbsent(rows[i], k -> new ArrayList<>()).add((long) i);
        }
        long[] order = new long[rows.length];
        int at = 0;
        try (TensorScope s = TensorScope.open()) {
            List<Tensor> parts = new ArrayList<>();
            for (var g : groups.entrySet()) {
                long[] idx = g.getValue().stream().mapToLong(Long::longValue).toArray();
                System.arraycopy(idx, 0, order, at, idx.length);
                at += idx.length;
                String n = g.getKey();
                Tensor sub = x.indexSelect(0, Tensor.of(idx, idx.length));
                parts.add(Functional.linear(Functional.linear(sub, layer.loraA(n), null), layer.loraB(n), null).mul(layer.scaling(n)));
            }
            if (at < rows.length) {
                long[] shape = x.shape();
                shape[0] = rows.length - at;
                shape[shape.length - 1] = layer.outFeatures();
                parts.add(Tensor.zeros(x.dtype(), shape));
                for (int i = 0; i < rows.length; i++) if (rows[i].equals(AdapterBank.BASE)) order[at++] = i;
            }
            long[] inverse = new long[rows.length];
            for (int k = 0; k < rows.length; k++) inverse[(int) order[k]] = k;
            return Tensor.cat(parts, 0).indexSelect(0, Tensor.of(inverse, inverse.length)).keep();
        }
    }

    /**
     * The gather + batched product of vLLM's CPU path and punica's bgmv, per batch row: gather
     * A[idx] (batch, r, in) and Bᵀ[idx] (batch, r, out) from stacks of every resident adapter,
     * then two batched products and the gathered scales. Rows without an adapter use index 0
     * and scale 0.
     */
    static Tensor gather(Tensor x, long[] adapterIndex, Stacks stacks) {
        int n = adapterIndex.length;
        long[] idx = new long[n];
        boolean anyBase = false;
        for (int i = 0; i < n; i++) {
            idx[i] = Math.max(0, adapterIndex[i]);
            anyBase |= adapterIndex[i] < 0;
        }
        try (TensorScope s = TensorScope.open()) {
            Tensor index = Tensor.of(idx, n);
            Tensor x3 = x.reshape(n, -1, x.size(x.dim() - 1));
            Tensor a = stacks.a().indexSelect(0, index); // (n, r, in)
            Tensor bt = stacks.bt().indexSelect(0, index); // (n, r, out)
            Tensor scale = stacks.scale().indexSelect(0, index);
            if (anyBase) {
                float[] keep = new float[n];
                for (int i = 0; i < n; i++) keep[i] = adapterIndex[i] < 0 ? 0f : 1f;
                scale = scale.mul(Tensor.of(keep, n));
            }
            Tensor up = x3.matmul(a.transpose(1, 2)).matmul(bt).mul(scale.view(n, 1, 1));
            long[] shape = x.shape();
            shape[shape.length - 1] = bt.size(2);
            return up.view(shape).keep();
        }
    }

    /** Every resident adapter of one layer stacked for {@link #gather}: A (n, r, in), Bᵀ (n, r, out), scales (n). */
    record Stacks(Tensor a, Tensor bt, Tensor scale, Map<String, Integer> index) implements AutoCloseable {

        static Stacks of(LoraLinear layer) {
            List<String> names = layer.adapterNames();
            Map<String, Integer> index = new LinkedHashMap<>();
            float[] sc = new float[names.size()];
            try (TensorScope s = TensorScope.open(); var ng = dev.lora4j.Torch.noGrad()) {
                List<Tensor> as = new ArrayList<>();
                List<Tensor> bts = new ArrayList<>();
                for (int i = 0; i < names.size(); i++) {
                    String n = names.get(i);
                    index.put(n, i);
                    as.add(layer.loraA(n));
                    bts.add(layer.loraB(n).t());
                    sc[i] = (float) layer.scaling(n);
                }
                return new Stacks(Tensor.stack(as, 0).keep(), Tensor.stack(bts, 0).contiguous().keep(), Tensor.of(sc, sc.length).keep(),
                        Map.copyOf(index));
            }
        }

        /** The stack index of each row's adapter, -1 for none. */
        long[] indices(String[] rows) {
            long[] idx = new long[rows.length];
            for (int i = 0; i < rows.length; i++) idx[i] = rows[i].equals(AdapterBank.BASE) ? -1 : index.get(rows[i]);
            return idx;
        }

        @Override
        public void close() {
            a.close();
            bt.close();
            scale.close();
        }
    }
}
