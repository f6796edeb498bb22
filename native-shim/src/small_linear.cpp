// See small_linear.h.
#include "small_linear.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <ATen/Parallel.h>

#include "small_gemm.h"
#include "split_gemm.h"

namespace lt::small {

bool fits(const at::Tensor& rows, const at::Tensor& w) {
    return rows.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && rows.device().is_cpu() &&
           w.device().is_cpu() && rows.dim() == 2 && rows.size(0) <= lt::gemm::kMaxRows && w.dim() == 2 &&
           w.is_contiguous() && lt::gemm::available();
}

at::Tensor xwt(const at::Tensor& x2, const at::Tensor& w, const at::Tensor& bias) {
    const at::Tensor x = x2.contiguous();
    const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
    const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    at::Tensor y = at::empty({M, N}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) { lt::gemm::xwt(xp, M, K, wp, N, bp, yp, n0, n1); });
    return y;
}

namespace {
constexpr int64_t kColumns = 16;  // columns per task of gw (its narrowest tile)
}

at::Tensor gw(const at::Tensor& g2, const at::Tensor& w) {
    const at::Tensor g = g2.contiguous();
    const int64_t M = g.size(0), N = g.size(1), K = w.size(1);
    at::Tensor y = at::empty({M, K}, g.options());
    const float* gp = g.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const int64_t blocks = (K + kColumns - 1) / kColumns;
    at::parallel_for(0, blocks, 4, [&](int64_t b0, int64_t b1) {
        lt::gemm::gw(gp, M, N, wp, K, yp, b0 * kColumns, std::min(K, b1 * kColumns));
    });
    return y;
}

namespace {

// Whether bias suits w's products: undefined, or (N) of w's dtype on the CPU.
bool bias_fits(const at::Tensor& bias, const at::Tensor& w) {
    return !bias.defined() || (bias.dim() == 1 && bias.size(0) == w.size(0) &&
                               bias.scalar_type() == w.scalar_type() && bias.device().is_cpu());
}

}  // namespace

at::Tensor base_product(const at::Tensor& x2, const at::Tensor& w, const at::Tensor& bias) {
    if (fits(x2, w) && bias_fits(bias, w)) return xwt(x2, w, bias);
    return lt::split::addmm(bias, x2, w.t());
}

at::Tensor grad_input(const at::Tensor& g2, const at::Tensor& w) {
    if (c10::GradMode::is_enabled()) return at::mm(g2, w);  // create_graph: autograd records it
    return fits(g2, w) ? gw(g2, w) : lt::split::mm(g2, w);
}

namespace {

using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Gradients of out = x·wᵀ + bias for x, w and bias (the next edges, in that order): with
// g = dL/dout (M, out), dx = g·w, dw = gᵀ·x, dbias = Σ_rows g. Without grad mode (a plain
// backward) dx runs in the kernels; under create_graph in ATen's ops, which autograd records.
struct LinearBackward : torch::autograd::Node {
    SavedVariable x, w;
    std::vector<int64_t> x_sizes;

    variable_list apply(variable_list&& grads) override {
        variable_list out(3);
        if (!grads[0].defined()) return out;
        const at::Tensor g = rows(grads[0]);
        if (task_should_compute_output(0)) {
            out[0] = grad_input(g, w.unpack()).view(x_sizes);
        }
        if (task_should_compute_output(1)) {
            const at::Tensor X = x.unpack();
            out[1] = c10::GradMode::is_enabled() ? at::mm(g.t(), X) : lt::split::mm(g.t(), X);
        }
        if (task_should_compute_output(2)) out[2] = g.sum(0);
        return out;
    }

    std::string name() const override { return "LinearBackward"; }

    void release_variables() override {
        x.reset_data();
        w.reset_data();
    }
};

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
    if (x.dim() < 1 || w.dim() != 2 || x.size(-1) != w.size(1) || !bias_fits(bias, w)) return at::linear(x, w, bias);
    const at::Tensor x2 = rows(x);
    if (!fits(x2, w) && !lt::split::worth(x2, w.t())) return at::linear(x, w, bias);
    std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
    sizes.back() = w.size(0);
    at::Tensor y;
    {
        c10::AutoGradMode no_grad(false);
        y = base_product(x2, w, bias);
        if (x.dim() != 2) y.resize_(sizes);  // a tensor of its own, not a view of the (M, N) result
    }
    const bool needs_graph = c10::GradMode::is_enabled() &&
                             (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
    if (!needs_graph) return y;
    auto node = std::shared_ptr<LinearBackward>(new LinearBackward(), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x, w, bias));
    if (node->should_compute_output(0)) {
        node->w = SavedVariable(w, false);
        node->x_sizes.assign(x.sizes().begin(), x.sizes().end());
    }
    if (node->should_compute_output(1)) node->x = SavedVariable(x2, false);
    torch::autograd::set_history(y, node);
    return y;
}

}  // namespace lt::small
