package dev.lora4j.lora;

/**
 * How {@link Lora#addWeightedAdapter} combines adapters into a new one, as PEFT's
 * {@code combination_type}. The new adapter has scale 1 (α = its rank, no rsLoRA): the
 * old adapters' scales and the weights wᵢ are folded into its factors.
 */
public enum Combination {
    /**
     * A = Σ √(wᵢ·sᵢ)·Aᵢ and B = Σ √(wᵢ·sᵢ)·Bᵢ: all adapters need the same rank. ΔW is
     * B·A, which equals Σ wᵢ·ΔWᵢ only for one adapter (the cross terms are PEFT's too).
     */
    LINEAR,
    /** A = cat(wᵢ·sᵢ·Aᵢ) and B = cat(Bᵢ) along the rank: rank Σ rᵢ and ΔW = Σ wᵢ·ΔWᵢ exactly. */
    CAT,
    /**
     * The best rank-k approximation of Σ wᵢ·ΔWᵢ by SVD: B = U_k·diag(S_k), A = Vh_k; k is
     * the rank asked for, else the largest rank of the adapters.
     */
    SVD
}
