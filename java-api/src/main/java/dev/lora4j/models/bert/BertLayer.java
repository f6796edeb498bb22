package dev.lora4j.models.bert;

import dev.lora4j.Tensor;
import dev.lora4j.TensorScope;
import dev.lora4j.nn.Activation;
import dev.lora4j.nn.Linear;
import dev.lora4j.nn.Module;
import dev.lora4j.nn.MultiHeadSelfAttention;
import dev.lora4j.nn.PackedTokens;

/**
 * One HF {@code BertLayer}: {@code attention.self} ({@link MultiHeadSelfAttention} with
 * {@code query}/{@code key}/{@code value}), {@code attention.output} ({@link BertOutput}),
 * {@code intermediate.dense} + activation, {@code output} ({@link BertOutput}). Children are
 * looked up at every forward, so LoRA surgery on any of them takes effect. Ownership and
 * threads: as every {@link Module}.
 */
public class BertLayer extends Module {

    /** HF's {@code BertAttention}: children {@code self} and {@code output}. */
    public static final class Attention extends Module {
        Attention(BertConfig c) {
            registerModule("self", new MultiHeadSelfAttention(c.hiddenSize(), c.numAttentionHeads(), c.attentionProbsDropoutProb()));
            registerModule("output", new BertOutput(c, c.hiddenSize()));
        }

        @Override
        public Tensor forward(Tensor hidden) {
            return forward(hidden, null);
        }

        public Tensor forward(Tensor hidden, Tensor mask) {
            return forward(hidden, mask, null);
        }

        /** As {@link #forward(Tensor, Tensor)}; with a {@code layout}, on its packed real tokens (tokens, hidden). */
        public Tensor forward(Tensor hidden, Tensor mask, PackedTokens layout) {
            try (var scope = TensorScope.open()) {
                MultiHeadSelfAttention self = (MultiHeadSelfAttention) child("self");
                Tensor ctx = layout == null ? self.forward(hidden, mask) : self.forward(hidden, mask, layout);
                return ((BertOutput) child("output")).forward(ctx, hidden).keep();
            }
        }
    }

    /** HF's {@code BertIntermediate}: child {@code dense}, then the activation. */
    public static final class Intermediate extends Module {
        private final Activation act;

        Intermediate(BertConfig c) {
            registerModule("dense", new Linear(c.hiddenSize(), c.intermediateSize()));
            act = switch (c.hiddenAct()) {
                case "gelu" -> Activation.gelu();
                case "gelu_new", "gelu_pytorch_tanh" -> Activation.gelu("tanh");
                default -> Activation.relu();
            };
        }

        @Override
        public Tensor forward(Tensor hidden) {
            try (var scope = TensorScope.open()) {
                return act.forward(child("dense").forward(hidden)).keep();
            }
        }
    }

    public BertLayer(BertConfig config) {
        registerModule("attention", new Attention(config));
        registerModule("intermediate", new Intermediate(config));
        registerModule("output", new BertOutput(config, config.intermediateSize()));
    }

    @Override
    public Tensor forward(Tensor hidden) {
        return forward(hidden, null);
    }

    /** hidden (batch, seq, hidden); mask additive (batch, 1, 1, seq) or null. */
    public Tensor forward(Tensor hidden, Tensor mask) {
        return forward(hidden, mask, null);
    }

    /**
     * As {@link #forward(Tensor, Tensor)}; with a {@code layout}, hidden is its packed real
     * tokens (tokens, hidden) and so is the result: every token-wise part runs on them alone,
     * inside {@link PackedTokens#run} (a mixed LoRA batch gives each token its row's adapter).
     */
    public Tensor forward(Tensor hidden, Tensor mask, PackedTokens layout) {
        return layout == null ? forwardIn(hidden, mask, null) : layout.run(() -> forwardIn(hidden, mask, layout));
    }

    private Tensor forwardIn(Tensor hidden, Tensor mask, PackedTokens layout) {
        try (var scope = TensorScope.open()) {
            Tensor a = ((Attention) child("attention")).forward(hidden, mask, layout);
            Tensor i = child("intermediate").forward(a);
            return ((BertOutput) child("output")).forward(i, a).keep();
        }
    }
}
