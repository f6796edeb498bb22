// The LoRA linear forward fused into one shim call. Two forms:
//  - a frozen base weight (W needs no gradient) in grad mode: one autograd node of our own,
//    LoraLinearBackward, instead of the five to seven nodes (linear, mm, transposes, addmm) that
//    the composed operations record. Its forward is base addmm + s·(x·aᵀ)·bmᵀ accumulated in
//    place; it saves only x (for dA), x·aᵀ (for dB), the factors, and W only when x needs a
//    gradient; its backward computes dA, dB, the bias's gradient only when the bias is
//    trainable, and dx only when x needs one — never a gradient for the frozen W, which LoRA
//    does not train. For a batch of at most 16 rows in float32 its two products with W
//    (forward x·Wᵀ, backward g·W) run in small_gemm's kernels, which read W without packing
//    it as BLAS does.
//  - otherwise (a trained base weight, no grad mode): the same arithmetic composed of ATen
//    ops, so autograd records it as usual, with the base product from small_linear.h as in
//    lt_linear.
// Every form takes its base product from small_linear.h, so a LoRA layer whose update is zero
// computes the bits of the plain linear layer.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include "internal.h"
#include "small_linear.h"

using lt::T;

namespace {

void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

void check_factors(const at::Tensor& x, const at::Tensor& a, const at::Tensor& bm) {
    require(a.dim() == 2 && bm.dim() == 2, "lora: a must be (r, in) and bm (out, r)");
    require(x.dim() >= 1 && x.size(-1) == a.size(1), "lora: x's last dimension must be a's in_features");
    require(bm.size(1) == a.size(0), "lora: a (r, in) and bm (out, r) disagree on r");
}

// y + scale·(x·aᵀ)·bmᵀ: two matrix products, the second accumulating into y (addmm).
at::Tensor add_delta(const at::Tensor& y, const at::Tensor& x, const at::Tensor& a, const at::Tensor& bm, double scale) {
    check_factors(x, a, bm);
    require(y.dim() == x.dim() && y.size(-1) == bm.size(0), "lora: y must be (..., out) with x's leading shape");
    if (x.dim() == 2) return at::addmm(y, at::mm(x, a.t()), bm.t(), /*beta=*/1, /*alpha=*/scale);
    const at::Tensor x2 = lt::small::rows(x);
    const at::Tensor y2 = lt::small::rows(y);
    require(x2.size(0) == y2.size(0), "lora: x and y disagree on their leading shape");
    return at::addmm(y2, at::mm(x2, a.t()), bm.t(), 1, scale).view(y.sizes());
}

using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Gradients of out = x·wᵀ + bias + s·(x·aᵀ)·bmᵀ for x, a, bm and bias (the next edges, in
// that order); w is a constant here. With g = dL/dout (N, out) and gb = s·g·bm (N, r):
// da = gbᵀ·x, dbm = s·gᵀ·(x·aᵀ), dx = g·w + gb·a, dbias = Σ_rows g (a bias left trainable,
// as PEFT's layer leaves it unless the model freezes it).
struct LoraLinearBackward : torch::autograd::Node {
    SavedVariable x, xa, w, a, bm;
    double scale = 1;
    std::vector<int64_t> x_sizes;

    variable_list apply(variable_list&& grads) override {
        variable_list out(4);
        if (!grads[0].defined()) return out;
        const bool need_x = task_should_compute_output(0), need_a = task_should_compute_output(1),
                   need_bm = task_should_compute_output(2), need_bias = task_should_compute_output(3);
        const at::Tensor g = lt::small::rows(grads[0]);
        const at::Tensor A = a.unpack(), B = bm.unpack();
        at::Tensor gb;
        if (need_x || need_a) gb = at::mm(g, B).mul_(scale);
        if (need_a) out[1] = at::mm(gb.t(), x.unpack());
        if (need_bm) out[2] = at::mm(g.t(), xa.unpack()).mul_(scale);
        if (need_bias) out[3] = g.sum(0);
        if (need_x) {
            at::Tensor dx = lt::small::grad_input(g, w.unpack());
            out[0] = dx.addmm_(gb, A).view(x_sizes);
        }
        return out;
    }

    std::string name() const override { return "LoraLinearBackward"; }

    void release_variables() override {
        x.reset_data();
        xa.reset_data();
        w.reset_data();
        a.reset_data();
        bm.reset_data();
    }
};

// The frozen-base form: needs grad mode, a base weight without gradient and an input or a
// factor that needs one.
bool use_node(const at::Tensor& x, const at::Tensor& w, const at::Tensor& a, const at::Tensor& bm) {
    return c10::GradMode::is_enabled() && !w.requires_grad() && (x.requires_grad() || a.requires_grad() || bm.requires_grad());
}

at::Tensor lora_linear_node(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, const at::Tensor& a,
                            const at::Tensor& bm, double scale) {
    check_factors(x, a, bm);
    require(w.dim() == 2 && w.size(1) == x.size(-1) && w.size(0) == bm.size(0),
            "lora: w must be (out, in) with bm's out and x's in");
    const at::Tensor x2 = lt::small::rows(x);
    at::Tensor y, xa;
    {
        c10::AutoGradMode no_grad(false);
        y = lt::small::base_product(x2, w, bias);
        xa = at::mm(x2, a.t());
        y.addmm_(xa, bm.t(), /*beta=*/1, /*alpha=*/scale);
        if (x.dim() != 2) {
            std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
            sizes.back() = w.size(0);
            y = y.view(sizes);
        }
    }
    auto node = std::shared_ptr<LoraLinearBackward>(new LoraLinearBackward(), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x, a, bm, bias));
    node->scale = scale;
    if (node->should_compute_output(1)) node->x = SavedVariable(x2, false);
    if (node->should_compute_output(2)) node->xa = SavedVariable(xa, false);
    if (node->should_compute_output(0)) {
        node->w = SavedVariable(w, false);
        node->x_sizes.assign(x.sizes().begin(), x.sizes().end());
    }
    if (node->should_compute_output(0) || node->should_compute_output(1)) node->bm = SavedVariable(bm, false);
    if (node->should_compute_output(0)) node->a = SavedVariable(a, false);
    torch::autograd::set_history(y, node);
    return y;
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
        const at::Tensor bias_t = lt::opt(bias);
        if (use_node(*X, *W, *A, *B)) {
            lt::put(out, lora_linear_node(*X, *W, bias_t, *A, *B, scale));
        } else if (!c10::GradMode::is_enabled() ||
                   !(X->requires_grad() || W->requires_grad() || (bias_t.defined() && bias_t.requires_grad()))) {
            // The base needs no graph (inference, or only the factors train): the same base product
            // as the frozen-base node.
            check_factors(*X, *A, *B);
            require(W->dim() == 2 && W->size(1) == X->size(-1), "lora: w must be (out, in) with x's in");
            const at::Tensor x2 = lt::small::rows(*X);
            at::Tensor y;
            {
                c10::AutoGradMode no_grad(false);
                y = lt::small::base_product(x2, *W, bias_t);
            }
            if (X->dim() != 2) {
                std::vector<int64_t> sizes(X->sizes().begin(), X->sizes().end());
                sizes.back() = W->size(0);
                y = y.view(sizes);
            }
            lt::put(out, add_delta(y, *X, *A, *B, scale));
        } else {
            at::Tensor y = lt::small::linear(*X, *W, bias_t);
            lt::put(out, add_delta(y, *X, *A, *B, scale));
        }
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
