package dev.lora4j.benchmarks.mixed;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.Torch;
import dev.lora4j.lora.Lora;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLayer;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.models.bert.BertConfig;
import dev.lora4j.models.bert.BertModel;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * A MiniLM-shaped encoder (all-MiniLM-L6-v2's sizes: 6 layers, hidden 384, 12 heads,
 * intermediate 1536, vocabulary 30522) with random weights, LoRA r = 8, α = 16 on query and
 * value, and many resident adapters {@code a0 .. a<n-1>} with random factors.
 */
final class MiniLmFixture {

    static final BertConfig MINILM = BertConfig.of(30522, 384, 6, 12, 1536);
    static final LoraConfig LORA = LoraConfig.of(8, 16).withTargetModules("query", "value");

    private MiniLmFixture() {}

    static String name(int i) {
        return "a" + i;
    }

    /** The encoder with {@code adapters} adapters in every query and value layer, in eval mode. */
    static BertModel encoder(int adapters) {
        BertModel m = new BertModel(MINILM, false);
        Lora.wrap(m, LORA);
        addAdapters(m, 0, adapters);
        Lora.deleteAdapter(m, LoraLayer.DEFAULT_ADAPTER);
        m.eval();
        return m;
    }

    /** One query-shaped layer (384 → 384) holding {@code adapters} adapters with random factors, in eval mode. */
    static LoraLinear layer(int adapters) {
        int h = MINILM.hiddenSize();
        LoraLinear l = new LoraLinear(new dev.lora4j.nn.Linear(h, h), name(0), LORA);
        for (int i = 1; i < adapters; i++) l.addAdapter(name(i), LORA);
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            for (String n : l.adapterNames()) l.loraB(n).copy_(Tensor.randn(l.loraB(n).shape()).mul(0.02));
        }
        l.eval();
        return l;
    }

    /** Adds adapters {@code from .. to-1} with random A and B (B is zero after PEFT's init). */
    static void addAdapters(BertModel m, int from, int to) {
        for (int i = from; i < to; i++) Lora.addAdapter(m, name(i), LORA);
        try (var ng = Torch.noGrad(); TensorScope s = TensorScope.open()) {
            for (LoraLayer l : Lora.loraLayers(m).values()) {
                for (int i = from; i < to; i++) l.loraB(name(i)).copy_(Tensor.randn(l.loraB(name(i)).shape()).mul(0.02));
            }
        }
    }

    /** Replaces every LoRA layer by a {@link Switch} around it. */
    static List<Switch> installSwitches(BertModel m) {
        List<Switch> out = new ArrayList<>();
        for (var e : Lora.loraLayers(m).entrySet()) {
            String path = e.getKey();
            int dot = path.lastIndexOf('.');
            Switch s = new Switch((LoraLinear) e.getValue());
            m.module(path.substring(0, dot)).replaceChild(path.substring(dot + 1), s);
            out.add(s);
        }
        return out;
    }

    /**
     * {@code batch} row names with {@code distinct} different adapters (each used about equally,
     * in random order) drawn from {@code resident}; with distinct > batch, batch distinct ones.
     */
    static String[] rows(int batch, int distinct, int resident, long seed) {
        Random r = new Random(seed);
        List<Integer> pool = new ArrayList<>();
        for (int i = 0; i < resident; i++) pool.add(i);
        Collections.shuffle(pool, r);
        int k = Math.min(distinct, batch);
        List<String> names = new ArrayList<>();
        for (int i = 0; i < batch; i++) names.add(name(pool.get(i % k)));
        Collections.shuffle(names, r);
        return names.toArray(String[]::new);
    }

    /** Random token ids (batch, seq). */
    static Tensor ids(int batch, int seq, long seed) {
        Random r = new Random(seed);
        long[] ids = new long[batch * seq];
        for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(MINILM.vocabSize());
        return Tensor.of(ids, batch, seq);
    }
}
