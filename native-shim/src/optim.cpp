// Optimizers (torch::optim) and the linear algebra that LoRA needs (SVD).
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grad_lock.h"
#include "internal.h"
#include "optim_kernels.h"

// An optimizer is either fused (the common case: CPU float32/float64 contiguous parameters;
// one pass per parameter through optim_kernels.cpp, no temporaries) or, for anything else
// (CUDA, half precision, strided parameters) or when LORA4J_OPTIM=torch is set in the
// environment, LibTorch's torch::optim implementation. Both follow torch::optim's (= PyTorch's)
// update rules, state layout (per-parameter step counts, lazily created moments) and
// skip parameters without a gradient.
struct lt_optimizer {
    enum class Kind { SGD, ADAM };
    std::unique_ptr<torch::optim::Optimizer> impl;  // set when not fused
    Kind kind = Kind::SGD;
    std::vector<at::Tensor> params;
    double lr = 0, momentum = 0, dampening = 0, weight_decay = 0, beta1 = 0, beta2 = 0, eps = 0;
    bool nesterov = false, amsgrad = false, decoupled = false;
    std::vector<at::Tensor> s1, s2, s3;  // SGD: momentum buffer; Adam: exp_avg, exp_avg_sq, max_exp_avg_sq
    std::vector<int64_t> steps;
};

using lt::T;

namespace {

constexpr int64_t kGrain = 32768;  // elements per task, as ATen's pointwise kernels

// The bytes [begin, end) of its storage that a tensor's elements span (every element of a dense
// tensor is in it; a strided one may skip some). Empty for a tensor without elements.
std::pair<int64_t, int64_t> extent(const at::Tensor& t) {
    const int64_t item = static_cast<int64_t>(t.element_size());
    const int64_t begin = t.storage_offset() * item;
    if (t.numel() == 0) return {begin, begin};
    int64_t last = 0;
    for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * std::abs(t.stride(d));
    return {begin, begin + (last + 1) * item};
}

// Refuses two parameters that are one tensor (listed twice, or another handle on it: alias())
// or that share memory (a detach() or overlapping view of another): a step would update that
// memory once per listing, each time with its own state. Parameters over disjoint parts of one
// buffer are separate; for a strided one the bytes its elements span count as its memory, so
// interleaved strided views of one buffer are refused too.
void distinct(const std::vector<at::Tensor>& v) {
    std::unordered_map<const void*, size_t> by_impl;
    std::unordered_map<const void*, std::vector<size_t>> by_storage;
    for (size_t j = 0; j < v.size(); ++j) {
        const at::Tensor& q = v[j];
        const auto seen = by_impl.emplace(q.unsafeGetTensorImpl(), j);
        if (!seen.second)
            throw std::invalid_argument("params[" + std::to_string(seen.first->second) + "] and params[" +
                                        std::to_string(j) + "] are the same tensor (listed twice, or an alias of "
                                        "it): an optimizer takes each parameter once");
        if (!q.has_storage()) continue;
        const void* key = q.storage().unsafeGetStorageImpl();
        auto& same = by_storage[key];
        const auto qe = extent(q);
        for (size_t i : same) {
            const auto pe = extent(v[i]);
            if (pe.first < qe.second && qe.first < pe.second)
                throw std::invalid_argument("params[" + std::to_string(i) + "] and params[" + std::to_string(j) +
                                            "] share memory (views or detach()es of the same data): a step "
                                            "would update it once for each");
        }
        same.push_back(j);
    }
}

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
    distinct(v);
    return v;
}

bool fusable(const std::vector<at::Tensor>& ps) {
    const char* env = std::getenv("LORA4J_OPTIM");
    if (env != nullptr && std::strcmp(env, "torch") == 0) return false;
    for (const auto& p : ps) {
        if (!p.device().is_cpu() || p.layout() != at::kStrided || !p.is_contiguous()) return false;
        if (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble) return false;
    }
    return true;
}

lt_optimizer* fused(std::vector<at::Tensor> ps, lt_optimizer::Kind kind) {
    auto* o = new lt_optimizer();
    o->kind = kind;
    o->params = std::move(ps);
    const size_t n = o->params.size();
    o->s1.resize(n);
    o->s2.resize(n);
    o->s3.resize(n);
    o->steps.assign(n, 0);
    return o;
}

torch::optim::Optimizer& opt(lt_optimizer* o) { return *lt::need(o, "opt")->impl; }

// The gradient of params[i] as a contiguous dense tensor of the parameter's type, or undefined.
at::Tensor gradient(const at::Tensor& p, const char* name) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) return g;
    if (g.is_sparse()) throw std::invalid_argument(std::string(name) + " does not support sparse gradients");
    if (g.scalar_type() != p.scalar_type() || g.sizes() != p.sizes())
        throw std::invalid_argument(std::string(name) + ": a gradient's type or shape differs from its parameter's");
    if (!p.is_contiguous()) throw std::invalid_argument(std::string(name) + ": a parameter is no longer contiguous");
    return g.is_contiguous() ? g : g.contiguous();
}

void step_adam(lt_optimizer& o) {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < o.params.size(); ++i) {
        at::Tensor& p = o.params[i];
        const at::Tensor g = gradient(p, "Adam");
        if (!g.defined()) continue;
        if (!o.s1[i].defined()) {
            o.s1[i] = at::zeros_like(p, at::MemoryFormat::Contiguous);
            o.s2[i] = at::zeros_like(p, at::MemoryFormat::Contiguous);
            if (o.amsgrad) o.s3[i] = at::zeros_like(p, at::MemoryFormat::Contiguous);
        }
        const int64_t t = ++o.steps[i];
        lt::kernels::AdamArgs a{};
        a.lr = o.lr;
        a.beta1 = o.beta1;
        a.beta2 = o.beta2;
        a.eps = o.eps;
        a.weight_decay = o.weight_decay;
        a.decoupled = o.decoupled;
        a.step_size = o.lr / (1 - std::pow(o.beta1, static_cast<double>(t)));
        a.bias_correction2_sqrt = std::sqrt(1 - std::pow(o.beta2, static_cast<double>(t)));
        const int64_t n = p.numel();
        if (p.scalar_type() == at::kFloat) {
            float *pp = p.data_ptr<float>(), *m = o.s1[i].data_ptr<float>(), *v = o.s2[i].data_ptr<float>();
            float* vm = o.amsgrad ? o.s3[i].data_ptr<float>() : nullptr;
            const float* gp = g.data_ptr<float>();
            at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
                lt::kernels::adam_float(pp + b, gp + b, m + b, v + b, vm ? vm + b : nullptr, e - b, a);
            });
        } else {
            double *pp = p.data_ptr<double>(), *m = o.s1[i].data_ptr<double>(), *v = o.s2[i].data_ptr<double>();
            double* vm = o.amsgrad ? o.s3[i].data_ptr<double>() : nullptr;
            const double* gp = g.data_ptr<double>();
            at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
                lt::kernels::adam_double(pp + b, gp + b, m + b, v + b, vm ? vm + b : nullptr, e - b, a);
            });
        }
        // In place, as p.addcdiv_ would be: autograd must see that the parameter changed.
        p.unsafeGetTensorImpl()->bump_version();
    }
}

void step_sgd(lt_optimizer& o) {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < o.params.size(); ++i) {
        at::Tensor& p = o.params[i];
        const at::Tensor g = gradient(p, "SGD");
        if (!g.defined()) continue;
        lt::kernels::SgdArgs a{};
        a.lr = o.lr;
        a.momentum = o.momentum;
        a.dampening = o.dampening;
        a.weight_decay = o.weight_decay;
        a.nesterov = o.nesterov;
        a.first = false;
        if (o.momentum != 0 && !o.s1[i].defined()) {
            o.s1[i] = at::empty_like(p, at::MemoryFormat::Contiguous);
            a.first = true;
        }
        const int64_t n = p.numel();
        if (p.scalar_type() == at::kFloat) {
            float* pp = p.data_ptr<float>();
            float* buf = o.momentum != 0 ? o.s1[i].data_ptr<float>() : nullptr;
            const float* gp = g.data_ptr<float>();
            at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
                lt::kernels::sgd_float(pp + b, gp + b, buf ? buf + b : nullptr, e - b, a);
            });
        } else {
            double* pp = p.data_ptr<double>();
            double* buf = o.momentum != 0 ? o.s1[i].data_ptr<double>() : nullptr;
            const double* gp = g.data_ptr<double>();
            at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
                lt::kernels::sgd_double(pp + b, gp + b, buf ? buf + b : nullptr, e - b, a);
            });
        }
        p.unsafeGetTensorImpl()->bump_version();
    }
}

// Every parameter of an optimizer, fused or LibTorch's.
std::vector<at::Tensor> parameters(lt_optimizer& o) {
    if (!o.impl) return o.params;
    std::vector<at::Tensor> all;
    for (auto& group : o.impl->param_groups())
        for (auto& p : group.params()) all.push_back(p);
    return all;
}

void zero_grad(at::Tensor& p, bool set_to_none) {
    at::Tensor& g = p.mutable_grad();
    if (!g.defined()) return;
    if (set_to_none) {
        g.reset();
    } else {
        c10::NoGradGuard no_grad;
        if (g.grad_fn()) g = g.detach();
        g.zero_();
    }
}

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

lt_status lt_qr(const lt_tensor* a, lt_tensor** q, lt_tensor** r) {
    LT_BODY(
        lt::need(q, "q");
        lt::need(r, "r");
        auto qr = at::linalg_qr(*T(a, "a"), "reduced");
        lt::put(q, std::get<0>(qr));
        lt::put(r, std::get<1>(qr));
    );
}

lt_status lt_sgd_new(const lt_tensor* const* ps, int64_t count, double lr, double momentum,
                     double dampening, double weight_decay, int32_t nesterov, lt_optimizer** out) {
    LT_BODY(
        lt::need(out, "out");
        auto ps_ = params(ps, count);
        if (fusable(ps_)) {
            lt_optimizer* o = fused(std::move(ps_), lt_optimizer::Kind::SGD);
            o->lr = lr;
            o->momentum = momentum;
            o->dampening = dampening;
            o->weight_decay = weight_decay;
            o->nesterov = nesterov != 0;
            *out = o;
            return;
        }
        auto options = torch::optim::SGDOptions(lr).momentum(momentum).dampening(dampening)
                           .weight_decay(weight_decay).nesterov(nesterov != 0);
        auto* o = new lt_optimizer();
        o->impl = std::make_unique<torch::optim::SGD>(ps_, options);
        *out = o;
    );
}

lt_status lt_adam_new(const lt_tensor* const* ps, int64_t count, double lr, double beta1,
                      double beta2, double eps, double weight_decay, int32_t amsgrad,
                      int32_t decoupled_weight_decay, lt_optimizer** out) {
    LT_BODY(
        lt::need(out, "out");
        auto ps_ = params(ps, count);
        if (fusable(ps_)) {
            lt_optimizer* o = fused(std::move(ps_), lt_optimizer::Kind::ADAM);
            o->lr = lr;
            o->beta1 = beta1;
            o->beta2 = beta2;
            o->eps = eps;
            o->weight_decay = weight_decay;
            o->amsgrad = amsgrad != 0;
            o->decoupled = decoupled_weight_decay != 0;
            *out = o;
            return;
        }
        auto betas = std::make_tuple(beta1, beta2);
        auto* o = new lt_optimizer();
        if (decoupled_weight_decay != 0) {
            auto opts = torch::optim::AdamWOptions(lr).betas(betas).eps(eps)
                            .weight_decay(weight_decay).amsgrad(amsgrad != 0);
            o->impl = std::make_unique<torch::optim::AdamW>(ps_, opts);
        } else {
            auto opts = torch::optim::AdamOptions(lr).betas(betas).eps(eps)
                            .weight_decay(weight_decay).amsgrad(amsgrad != 0);
            o->impl = std::make_unique<torch::optim::Adam>(ps_, opts);
        }
        *out = o;
    );
}

lt_status lt_optimizer_step(lt_optimizer* o) {
    LT_BODY(
        lt::need(o, "opt");
        lt::GradLock lock(parameters(*o));
        if (o->impl) {
            o->impl->step();
        } else if (o->kind == lt_optimizer::Kind::ADAM) {
            step_adam(*o);
        } else {
            step_sgd(*o);
        }
    );
}

lt_status lt_optimizer_zero_grad(lt_optimizer* o, int32_t set_to_none) {
    LT_BODY(
        lt::need(o, "opt");
        lt::GradLock lock(parameters(*o));
        if (!o->impl) {
            for (auto& p : o->params) zero_grad(p, set_to_none != 0);
            return;
        }
        for (auto& group : opt(o).param_groups())
            for (auto& p : group.params()) zero_grad(p, set_to_none != 0);
    );
}

lt_status lt_optimizer_set_lr(lt_optimizer* o, double lr) {
    LT_BODY(
        if (!(lr >= 0)) throw std::invalid_argument("learning rate must be >= 0");
        lt::need(o, "opt");
        if (!o->impl) {
            o->lr = lr;
            return;
        }
        for (auto& group : opt(o).param_groups()) group.options().set_lr(lr);
    );
}

lt_status lt_optimizer_get_lr(const lt_optimizer* o, double* out) {
    LT_BODY(
        lt::need(out, "out");
        lt::need(o, "opt");
        *out = o->impl ? o->impl->param_groups().at(0).options().get_lr() : o->lr;
    );
}

lt_status lt_optimizer_free(lt_optimizer* o) {
    delete o;
    return LT_OK;
}

}  // extern "C"
