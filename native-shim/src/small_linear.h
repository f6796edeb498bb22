// x·wᵀ + bias for a few rows of x (a training batch) in small_gemm's kernels, with ATen's
// tensors: the products lt_linear and lt_lora_linear share, so a plain linear layer and a LoRA
// layer whose update is zero compute the same bits. Internal to the shim.
#pragma once

#include <ATen/ATen.h>

namespace lt::small {

// t (..., n) as a matrix (rows, n), rows the product of the leading dimensions: a view where
// reshape gives one. Not reshape({-1, n}), which cannot infer the row count when n = 0 (a tensor
// of no elements) and throws.
inline at::Tensor rows(const at::Tensor& t) {
    if (t.dim() == 2) return t;
    int64_t m = 1;
    for (int64_t i = 0; i + 1 < t.dim(); i++) m *= t.size(i);
    return t.reshape({m, t.dim() == 0 ? 1 : t.size(-1)});
}

// Whether rows (M, K)·w(N, K)ᵀ and rows (M, N)·w run in small_gemm's kernels: float32 on the
// CPU, at most kMaxRows rows, w contiguous, kernels available on this CPU.
bool fits(const at::Tensor& rows, const at::Tensor& w);

// x2·wᵀ + bias (bias may be undefined) in the kernels, parallel over w's rows; needs fits(x2, w).
at::Tensor xwt(const at::Tensor& x2, const at::Tensor& w, const at::Tensor& bias);

// g2·w in the kernels, parallel over blocks of w's columns; needs fits(g2, w).
at::Tensor gw(const at::Tensor& g2, const at::Tensor& w);

// x2·wᵀ + bias without a graph: the kernels where they apply, else split over the intra-op
// threads where that pays (split_gemm.h), else addmm.
at::Tensor base_product(const at::Tensor& x2, const at::Tensor& w, const at::Tensor& bias);

// g2·w, the input's gradient of a linear layer: in grad mode (create_graph) at::mm, which
// autograd records; otherwise the kernels, a split product or mm as for base_product.
at::Tensor grad_input(const at::Tensor& g2, const at::Tensor& w);

// at::linear(x, w, bias) for x (..., in), w (out, in), bias (out) or undefined, with the product
// in the kernels when x has at most kMaxRows rows in all and everything is float32 on the CPU,
// or split over the intra-op threads when the product is large (split_gemm.h);
// in grad mode then one autograd node of its own (LinearBackward: dx = g·w, dw = gᵀ·x,
// dbias = Σ g, each only when needed; differentiable again under create_graph). Anything else
// is at::linear.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

}  // namespace lt::small
