// Transformer building blocks: layer normalisation and scaled dot-product attention.
// Both are composed of (or dispatch to) ATen ops, so autograd records them as usual.
#include <torch/csrc/api/include/torch/version.h>

#include <limits>

#include "internal.h"

using lt::T;

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

// A boolean mask (true = attend) as an additive one of q's dtype: 0 where true, -inf where false.
at::Tensor additive_mask(const at::Tensor& mask, const at::Tensor& q) {
    if (mask.scalar_type() != at::kBool) return mask;
    return at::zeros(mask.sizes(), q.options()).masked_fill_(mask.logical_not(),
                                                             -std::numeric_limits<double>::infinity());
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor mask,
                     double dropout_p, bool is_causal) {
    require(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(),
            "scaled_dot_product_attention: query, key and value must have the same rank >= 2");
    require(q.size(-1) == k.size(-1), "scaled_dot_product_attention: query and key disagree on the head size");
    require(k.size(-2) == v.size(-2), "scaled_dot_product_attention: key and value disagree on the sequence length");
    if (is_causal) {
        at::Tensor causal = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
        at::Tensor c = additive_mask(causal, q);
        mask = mask.defined() ? additive_mask(mask, q) + c : c;
    } else if (mask.defined()) {
        mask = additive_mask(mask, q);
    }
    // An absent mask must be an empty optional, not an undefined tensor.
    const c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
#if TORCH_VERSION_MAJOR >= 2
    return at::scaled_dot_product_attention(q, k, v, m, dropout_p, false);
#else
    // LibTorch 1.13's fused entry point (math kernel on CPU); it returns (output, weights).
    return std::get<0>(at::_scaled_dot_product_attention(q, k, v, m, dropout_p, false, false));
#endif
}

}  // namespace

extern "C" {

lt_status lt_layer_norm(const lt_tensor* input, const int64_t* normalized_shape, int64_t ndim,
                        const lt_tensor* weight, const lt_tensor* bias, double eps, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    at::layer_norm(*T(input, "input"), lt::dims(normalized_shape, ndim, "normalized_shape"),
                                   lt::opt(weight), lt::opt(bias), eps)));
}

lt_status lt_scaled_dot_product_attention(const lt_tensor* query, const lt_tensor* key, const lt_tensor* value,
                                          const lt_tensor* attn_mask, double dropout_p, int32_t is_causal,
                                          lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    attention(*T(query, "query"), *T(key, "key"), *T(value, "value"), lt::opt(attn_mask),
                              dropout_p, is_causal != 0)));
}

}  // extern "C"
