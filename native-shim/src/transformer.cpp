// Transformer building blocks: layer normalisation and scaled dot-product attention.
// Layer norm and the fused attention of LibTorch 2.x are ATen ops that autograd records as usual;
// LibTorch 1.13's attention is a loop over slices with its own autograd node (SliceAttention).
#include <torch/csrc/api/include/torch/version.h>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <limits>
#include <vector>

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

// Attention as one loop over the (batch · head) slices: per slice one addmm (scale·q·kᵀ + mask)
// and one mm, with the softmax between them done once per chunk of slices (64 Ki scores, 256 KiB
// in float32: one call instead of one per slice at short sequences, still in cache at long ones).
// The loops run under InferenceMode: their per-slice views and temporaries skip autograd's
// bookkeeping (the results land in tensors allocated outside; lora4j has no double backward).
// On LibTorch 1.13's CPU build a loop of BLAS matrix products is as fast as Python's
// bmm/softmax/bmm at 128 tokens and no (B, H, L, S) mask is materialised; at 32 tokens that
// composition (fwd + bwd) still takes about 0.6 of this loop's time (MiniLM shapes, one thread). The slices run in parallel (LibTorch's intra-op threads)
// straight into the output. With gradients the same loop runs inside one autograd node
// (SliceAttention below), whose backward is again one parallel loop of matrix products: no
// per-slice autograd nodes (2304 slices × 3 ops for MiniLM's six layers), and two threads
// help training as they help inference.
struct Slices {
    at::Tensor q3, k3, v3;       // (n, L, d), (n, S, d), (n, S, dv), contiguous
    at::Tensor m;                // the mask expanded to (lead..., L, S) (a view), or undefined
    std::vector<int64_t> lead;   // the leading (batch) dimensions, n = their product
    double scale;

    // The mask of slice i: m[i] over the leading dimensions, unravelled row-major.
    at::Tensor mask(int64_t i) const {
        at::Tensor mi = m;
        std::vector<int64_t> idx(lead.size());
        for (size_t j = lead.size(); j-- > 0;) {
            idx[j] = i % lead[j];
            i /= lead[j];
        }
        for (int64_t x : idx) mi = mi.select(0, x);
        return mi;
    }

    // The slices of chunk c: [c·chunk, min(n, (c+1)·chunk)).
    int64_t chunk = 1;

    // Slices [b, e): scores = scale·q kᵀ + mask per slice (one addmm each), one softmax over the
    // whole chunk (into p when defined, kept for backward), then out = P·v per slice.
    void forward(int64_t b, int64_t e, at::Tensor& out, at::Tensor& p) const {
        c10::InferenceMode guard;  // the loop's views and temporaries need no autograd bookkeeping
        at::Tensor scores = at::empty({e - b, q3.size(1), k3.size(1)}, q3.options());
        for (int64_t i = b; i < e; i++) {
            at::Tensor si = scores[i - b];
            if (m.defined()) {
                at::addmm_out(si, mask(i), q3[i], k3[i].t(), 1, scale);
            } else {
                at::mm_out(si, q3[i], k3[i].t()).mul_(scale);
            }
        }
        at::Tensor pc = p.defined() ? p.narrow(0, b, e - b) : at::empty_like(scores);
        at::_softmax_out(pc, scores, -1, false);
        for (int64_t i = b; i < e; i++) {
            at::Tensor oi = out[i];
            at::mm_out(oi, pc[i - b], v3[i]);
        }
    }

    at::Tensor run(at::Tensor* weights) {
        const int64_t n = q3.size(0);
        chunk = chunk_size(n, q3.size(1) * k3.size(1));
        at::Tensor out = at::empty({n, q3.size(1), v3.size(2)}, q3.options());
        at::Tensor p = weights ? at::empty({n, q3.size(1), k3.size(1)}, q3.options()) : at::Tensor();
        at::parallel_for(0, (n + chunk - 1) / chunk, 1, [&](int64_t begin, int64_t end) {
            for (int64_t c = begin; c < end; c++) forward(c * chunk, std::min(n, (c + 1) * chunk), out, p);
        });
        if (weights) *weights = p;
        return out;
    }

    // Slices per chunk: about 64 Ki scores (one softmax call per chunk instead of one per slice,
    // while the chunk stays in cache), and at least four chunks per thread when n allows.
    static int64_t chunk_size(int64_t n, int64_t per_slice) {
        const int64_t by_size = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, per_slice));
        const int64_t by_threads = std::max<int64_t>(1, n / (4 * at::get_num_threads()));
        return std::min(by_size, by_threads);
    }
};

// One autograd node for all slices. Saves q, k, v and the attention weights P; backward per
// slice: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dK = dSᵀ·Q,
// in the forward's chunks (dS by one softmax backward per chunk).
// The mask gets no gradient (callers use the composed path when it requires one).
struct SliceAttention : public torch::autograd::Function<SliceAttention> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q3, const at::Tensor& k3,
                              const at::Tensor& v3, Slices slices) {
        slices.q3 = q3;
        slices.k3 = k3;
        slices.v3 = v3;
        at::Tensor p;
        at::Tensor out = slices.run(&p);
        ctx->save_for_backward({q3, k3, v3, p});
        ctx->saved_data["scale"] = slices.scale;
        return out;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &p = saved[3];
        const double scale = ctx->saved_data["scale"].toDouble();
        const at::Tensor go = grads[0].contiguous();
        at::Tensor dq = at::empty_like(q3), dk = at::empty_like(k3), dv = at::empty_like(v3);
        const int64_t n = q3.size(0), chunk = Slices::chunk_size(n, p.size(1) * p.size(2));
        // Per chunk of slices: dV and dP per slice, one softmax backward over the chunk, then dQ, dK.
        at::parallel_for(0, (n + chunk - 1) / chunk, 1, [&](int64_t begin, int64_t end) {
            c10::InferenceMode guard;
            for (int64_t c = begin; c < end; c++) {
                const int64_t b = c * chunk, e = std::min(n, b + chunk);
                at::Tensor dp = at::empty({e - b, p.size(1), p.size(2)}, p.options());
                for (int64_t i = b; i < e; i++) {
                    const at::Tensor pi = p[i], goi = go[i];
                    at::Tensor dvi = dv[i], dpi = dp[i - b];
                    at::mm_out(dvi, pi.t(), goi);
                    at::mm_out(dpi, goi, v3[i].t());
                }
                at::Tensor ds = at::_softmax_backward_data(dp, p.narrow(0, b, e - b), -1, p.scalar_type()).mul_(scale);
                for (int64_t i = b; i < e; i++) {
                    at::Tensor dqi = dq[i], dki = dk[i];
                    const at::Tensor dsi = ds[i - b];
                    at::mm_out(dqi, dsi, k3[i]);
                    at::mm_out(dki, dsi.t(), q3[i]);
                }
            }
        });
        return {dq, dk, dv, at::Tensor()};
    }
};

at::Tensor attention_loop(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          bool grad) {
    const int64_t L = q.size(-2), S = k.size(-2), d = q.size(-1), dv = v.size(-1);
    Slices sl;
    sl.lead.assign(q.sizes().begin(), q.sizes().end() - 2);
    for (size_t i = 0; i < sl.lead.size(); i++) {
        require(k.size(i) == sl.lead[i] && v.size(i) == sl.lead[i],
                "scaled_dot_product_attention: query, key and value disagree on the batch dimensions");
    }
    std::vector<int64_t> full(sl.lead);
    full.push_back(L);
    full.push_back(S);
    sl.m = mask.defined() ? mask.expand(full) : at::Tensor();  // a view: nothing copied
    // With d = 0 the product q·kᵀ is empty, so 0: the scores are the mask alone, as in PyTorch 2.x
    // (1/√0 = inf would make them 0·inf = NaN).
    sl.scale = d > 0 ? 1.0 / std::sqrt(static_cast<double>(d)) : 0.0;
    std::vector<int64_t> shape(sl.lead);
    shape.push_back(L);
    shape.push_back(dv);
    // n slices, the product of the leading dimensions: reshape({-1, L, d}) cannot infer it for a
    // tensor of no elements (L, S, d or dv 0) and throws.
    int64_t n = 1;
    for (int64_t x : sl.lead) n *= x;
    const at::Tensor q3 = q.reshape({n, L, d}).contiguous();
    const at::Tensor k3 = k.reshape({n, S, d}).contiguous();
    const at::Tensor v3 = v.reshape({n, S, dv}).contiguous();
    if (grad) return SliceAttention::apply(q3, k3, v3, std::move(sl)).view(shape);
    sl.q3 = q3;
    sl.k3 = k3;
    sl.v3 = v3;
    return sl.run(nullptr).view(shape);
}

bool needs_grad(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
    return c10::GradMode::is_enabled() &&
           (q.requires_grad() || k.requires_grad() || v.requires_grad() || (mask.defined() && mask.requires_grad()));
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
#if TORCH_VERSION_MAJOR < 2
    // LibTorch 1.13 has no fused CPU kernel: the composed path (see attention_loop).
    if (dropout_p == 0 && q.device().is_cpu() && q.dim() >= 3 &&
        (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble) && k.scalar_type() == q.scalar_type() &&
        v.scalar_type() == q.scalar_type() && (!mask.defined() || mask.scalar_type() == q.scalar_type())) {
        if (!(needs_grad(q, k, v, mask) && mask.defined() && mask.requires_grad()))
            return attention_loop(q, k, v, mask, needs_grad(q, k, v, mask));
    }
#endif
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
