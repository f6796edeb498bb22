// lt_linear's small-batch autograd node (small_linear.cpp) differentiated twice: a gradient
// penalty through create_graph must equal at::linear's composed path. Java has no create_graph,
// so this check calls the C ABI directly (built as lora4j_shim_checks; run by ctest).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "lora4j.h"

namespace {

// An lt_tensor* is an at::TensorImpl* owning one reference (internal.h).
lt_tensor* handle(const at::Tensor& t) { return reinterpret_cast<lt_tensor*>(at::Tensor(t).unsafeReleaseTensorImpl()); }

at::Tensor own(lt_tensor* h) {
    return at::Tensor(c10::intrusive_ptr<at::TensorImpl, at::UndefinedTensorImpl>::reclaim(reinterpret_cast<at::TensorImpl*>(h)));
}

at::Tensor shim_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    lt_tensor *hx = handle(x), *hw = handle(w), *hb = b.defined() ? handle(b) : nullptr, *out = nullptr;
    const lt_status s = lt_linear(hx, hw, hb, &out);
    own(hx), own(hw);
    if (hb != nullptr) own(hb);
    if (s != LT_OK) throw std::runtime_error("lt_linear failed");
    return own(out);
}

// d/d(x, w, b) of |d sum(y²)/dx|² with y = linear(x, w, b).
std::vector<at::Tensor> penalty_grads(bool shim, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    const at::Tensor y = shim ? shim_linear(x, w, b) : at::linear(x, w, b);
    // Unless LORA4J_SMALL_GEMM=off or the CPU lacks AVX2 and FMA, lt_linear records its own node.
    const char* env = std::getenv("LORA4J_SMALL_GEMM");
    const bool kernels = !(env != nullptr && std::string(env) == "off") && __builtin_cpu_supports("avx2") &&
                         __builtin_cpu_supports("fma");
    if (shim && kernels && y.grad_fn()->name() != "LinearBackward")
        throw std::runtime_error("lt_linear recorded " + y.grad_fn()->name() + ", not its own LinearBackward");
    const at::Tensor gx = torch::autograd::grad({y.pow(2).sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    return torch::autograd::grad({gx.pow(2).sum()}, {x, w, b});
}

}  // namespace

int main() {
    at::manual_seed(3);
    int failures = 0;
    for (const int64_t rows : {1, 10, 16}) {
        const at::Tensor x = at::randn({rows, 37}).requires_grad_(true);
        const at::Tensor w = at::randn({23, 37}).requires_grad_(true);
        const at::Tensor b = at::randn({23}).requires_grad_(true);
        const auto got = penalty_grads(true, x, w, b), want = penalty_grads(false, x, w, b);
        const char* names[] = {"x", "w", "bias"};
        for (int i = 0; i < 3; ++i) {
            const bool ok = got[i].defined() && got[i].allclose(want[i], 1e-4, 1e-3);
            std::printf("%s: %lld rows, d penalty / d %s\n", ok ? "ok" : "FAILED", static_cast<long long>(rows), names[i]);
            failures += ok ? 0 : 1;
        }
    }
    return failures == 0 ? 0 : 1;
}
