// The one place where the shim's source differs between LibTorch lines (1.13 and 2.x).
// Every other file is the same for all of them; code that needs a difference asks here.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

// True when the LibTorch being compiled against is at least major.minor.
#define LT_TORCH_AT_LEAST(major, minor) \
    (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// LibTorch 2.0 added at::scaled_dot_product_attention: fused (flash / memory-efficient) kernels
// where the inputs allow, the plain math otherwise.
#define LT_HAS_FUSED_ATTENTION LT_TORCH_AT_LEAST(2, 0)

// Distributed (c10d) support is compiled into a LibTorch when it ships c10d's headers.
#if __has_include(<torch/csrc/distributed/c10d/ProcessGroup.hpp>)
#define LT_HAS_DISTRIBUTED 1
#else
#define LT_HAS_DISTRIBUTED 0
#endif

namespace lt::compat {

// softmax(q k^T / sqrt(d) + mask) v over the last two dimensions, as PyTorch's
// F.scaled_dot_product_attention (no dropout). mask: undefined, a boolean mask (true = attend)
// or an additive float mask, broadcastable to (..., L, S). is_causal masks j > i.
inline at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& mask,
                                               bool is_causal) {
#if LT_HAS_FUSED_ATTENTION
    return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask)
                                                                    : c10::nullopt,
                                            0.0, is_causal);
#else
    at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
    if (is_causal) {
        at::Tensor keep = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
        scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
    }
    if (mask.defined()) {
        scores = mask.scalar_type() == at::kBool
                     ? scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity())
                     : scores + mask;
    }
    return at::matmul(at::softmax(scores, -1), v);
#endif
}

}  // namespace lt::compat
