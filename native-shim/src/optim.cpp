// Optimizers (torch::optim) and the linear algebra that LoRA needs (SVD).
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <memory>
#include <vector>

#include "internal.h"

struct lt_optimizer {
    std::unique_ptr<torch::optim::Optimizer> impl;
};

using lt::T;

namespace {

std::vector<at::Tensor> params(const lt_tensor* const* ps, int64_t count) {
    if (count < 1) throw std::invalid_argument("an optimizer needs at least one parameter");
    lt::need(ps, "params");
    std::vector<at::Tensor> v;
    v.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
        at::Tensor p = *T(ps[i], "params[i]");
        if (!p.is_leaf() || !p.requires_grad())
            throw std::invalid_argument("params[" + std::to_string(i) +
                                        "] is not a leaf tensor that requires grad");
        v.push_back(std::move(p));
    }
    return v;
}

torch::optim::Optimizer& opt(lt_optimizer* o) { return *lt::need(o, "opt")->impl; }

}  // namespace

extern "C" {

lt_status lt_svd(const lt_tensor* a, lt_tensor** u, lt_tensor** s, lt_tensor** vh) {
    LT_BODY(
        lt::need(u, "u");
        lt::need(s, "s");
        lt::need(vh, "vh");
        auto r = at::linalg_svd(*T(a, "a"), /*full_matrices=*/false);
        lt::put(u, std::get<0>(r));
        lt::put(s, std::get<1>(r));
        lt::put(vh, std::get<2>(r));
    );
}

lt_status lt_sgd_new(const lt_tensor* const* ps, int64_t count, double lr, double momentum,
                     double dampening, double weight_decay, int32_t nesterov, lt_optimizer** out) {
    LT_BODY(
        lt::need(out, "out");
        auto options = torch::optim::SGDOptions(lr).momentum(momentum).dampening(dampening)
                           .weight_decay(weight_decay).nesterov(nesterov != 0);
        *out = new lt_optimizer{std::make_unique<torch::optim::SGD>(params(ps, count), options)};
    );
}

lt_status lt_adam_new(const lt_tensor* const* ps, int64_t count, double lr, double beta1,
                      double beta2, double eps, double weight_decay, int32_t amsgrad,
                      int32_t decoupled_weight_decay, lt_optimizer** out) {
    LT_BODY(
        lt::need(out, "out");
        auto betas = std::make_tuple(beta1, beta2);
        if (decoupled_weight_decay != 0) {
            auto o = torch::optim::AdamWOptions(lr).betas(betas).eps(eps)
                         .weight_decay(weight_decay).amsgrad(amsgrad != 0);
            *out = new lt_optimizer{std::make_unique<torch::optim::AdamW>(params(ps, count), o)};
        } else {
            auto o = torch::optim::AdamOptions(lr).betas(betas).eps(eps)
                         .weight_decay(weight_decay).amsgrad(amsgrad != 0);
            *out = new lt_optimizer{std::make_unique<torch::optim::Adam>(params(ps, count), o)};
        }
    );
}

lt_status lt_optimizer_step(lt_optimizer* o) { LT_BODY(opt(o).step()); }

lt_status lt_optimizer_zero_grad(lt_optimizer* o, int32_t set_to_none) {
    LT_BODY(
        for (auto& group : opt(o).param_groups()) {
            for (auto& p : group.params()) {
                at::Tensor& g = p.mutable_grad();
                if (!g.defined()) continue;
                if (set_to_none != 0) {
                    g.reset();
                } else {
                    c10::NoGradGuard no_grad;
                    if (g.grad_fn()) g = g.detach();
                    g.zero_();
                }
            }
        }
    );
}

lt_status lt_optimizer_set_lr(lt_optimizer* o, double lr) {
    LT_BODY(
        if (!(lr >= 0)) throw std::invalid_argument("learning rate must be >= 0");
        for (auto& group : opt(o).param_groups()) group.options().set_lr(lr);
    );
}

lt_status lt_optimizer_get_lr(const lt_optimizer* o, double* out) {
    LT_BODY(*lt::need(out, "out") = opt(const_cast<lt_optimizer*>(o)).param_groups().at(0).options().get_lr());
}

lt_status lt_optimizer_free(lt_optimizer* o) {
    delete o;
    return LT_OK;
}

}  // extern "C"
