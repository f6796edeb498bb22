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
    SVD,
    /**
     * TIES-merging applied to A and B separately (PEFT's {@code ties}): each factor list is
     * pruned to {@code density} by magnitude, a sign is elected per element and the weighted
     * values that agree with it are averaged ({@link MergeUtils#ties}). Factor weights are
     * √|wᵢ·sᵢ| with the sign of wᵢ·sᵢ on A. All adapters need the same rank.
     */
    TIES,
    /** DARE with task arithmetic on A and B (PEFT's {@code dare_linear}, {@link MergeUtils#dareLinear}); weights as TIES. */
    DARE_LINEAR,
    /** DARE with TIES' sign election on A and B (PEFT's {@code dare_ties}, {@link MergeUtils#dareTies}); weights as TIES. */
    DARE_TIES,
    /** Magnitude pruning then task arithmetic on A and B (PEFT's {@code magnitude_prune}, {@link MergeUtils#magnitudePrune}). */
    MAGNITUDE_PRUNE,
    /**
     * TIES on the adapters' ΔWᵢ = sᵢ·Bᵢ·Aᵢ with weights wᵢ, then the best rank-k approximation
     * by SVD as {@link #SVD} (PEFT's {@code ties_svd}); adapters of any ranks. PEFT multiplies its
     * already scaled ΔWᵢ by wᵢ·sᵢ here (sᵢ twice); lora4j folds sᵢ in once, as {@link #SVD} does.
     */
    TIES_SVD,
    /** {@link #DARE_LINEAR} on the ΔWᵢ, then SVD as {@link #TIES_SVD} (PEFT's {@code dare_linear_svd}). */
    DARE_LINEAR_SVD,
    /** {@link #DARE_TIES} on the ΔWᵢ, then SVD as {@link #TIES_SVD} (PEFT's {@code dare_ties_svd}). */
    DARE_TIES_SVD,
    /** {@link #MAGNITUDE_PRUNE} on the ΔWᵢ, then SVD as {@link #TIES_SVD} (PEFT's {@code magnitude_prune_svd}). */
    MAGNITUDE_PRUNE_SVD;

    /** Whether this type prunes with a density (PEFT's merge_utils types, on factors or, with _SVD, on ΔW). */
    public boolean usesDensity() {
        return this != LINEAR && this != CAT && this != SVD;
    }

    /** Whether this type ends with an SVD of the combined ΔW (a rank of its own, adapters of any ranks). */
    public boolean truncatesBySvd() {
        return this == SVD || this == TIES_SVD || this == DARE_LINEAR_SVD || this == DARE_TIES_SVD || this == MAGNITUDE_PRUNE_SVD;
    }
}
