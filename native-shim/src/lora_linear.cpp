// The LoRA linear forward fused into one shim call: base linear plus the low-rank update as one
// addmm on the base result. Composed of ATen ops, so autograd records it as usual.
#include "internal.h"

using lt::T;

namespace {

void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

// y + scale·(x·aᵀ)·bmᵀ: two matrix products, the second accumulating into y (addmm).
at::Tensor add_delta(const at::Tensor& y, const at::Tensor& x, const at::Tensor& a, const at::Tensor& bm, double scale) {
    require(a.dim() == 2 && bm.dim() == 2, "lora: a must be (r, in) and bm (out, r)");
    require(x.dim() >= 1 && x.size(-1) == a.size(1), "lora: x's last dimension must be a's in_features");
    require(bm.size(1) == a.size(0), "lora: a (r, in) and bm (out, r) disagree on r");
    require(y.dim() == x.dim() && y.size(-1) == bm.size(0), "lora: y must be (..., out) with x's leading shape");
    if (x.dim() == 2) return at::addmm(y, at::mm(x, a.t()), bm.t(), /*beta=*/1, /*alpha=*/scale);
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    const at::Tensor y2 = y.reshape({-1, y.size(-1)});
    require(x2.size(0) == y2.size(0), "lora: x and y disagree on their leading shape");
    return at::addmm(y2, at::mm(x2, a.t()), bm.t(), 1, scale).view(y.sizes());
}

}  // namespace

extern "C" {

lt_status lt_lora_linear(const lt_tensor* x, const lt_tensor* w, const lt_tensor* bias, const lt_tensor* a,
                         const lt_tensor* bm, double scale, lt_tensor** out) {
    LT_BODY(
        lt::need(out, "out");
        const auto X = T(x, "x");
        const auto W = T(w, "w");
        const auto A = T(a, "a");
        const auto B = T(bm, "bm");
        at::Tensor y = at::linear(*X, *W, lt::opt(bias));
        lt::put(out, add_delta(y, *X, *A, *B, scale));
    );
}

lt_status lt_lora_add_delta(const lt_tensor* y, const lt_tensor* x, const lt_tensor* a, const lt_tensor* bm,
                            double scale, lt_tensor** out) {
    LT_BODY(
        lt::need(out, "out");
        lt::put(out, add_delta(*T(y, "y"), *T(x, "x"), *T(a, "a"), *T(bm, "bm"), scale));
    );
}

}  // extern "C"
