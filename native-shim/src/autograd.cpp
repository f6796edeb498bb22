// Autograd: requires_grad, backward, gradients, thread-local grad mode.
#include <c10/core/GradMode.h>

#include "grad_lock.h"
#include "internal.h"

using lt::T;

extern "C" {

int32_t lt_requires_grad(const lt_tensor* t) { return t != nullptr && lt::impl(t)->requires_grad(); }

lt_status lt_set_requires_grad(lt_tensor* t, int32_t requires_grad) {
    LT_BODY(T(t, "t")->requires_grad_(requires_grad != 0));
}

int32_t lt_is_leaf(const lt_tensor* t) { return t != nullptr && lt::Borrowed(t)->is_leaf(); }

lt_status lt_backward(const lt_tensor* t, const lt_tensor* gradient, int32_t retain_graph) {
    LT_BODY(T(t, "t")->backward(lt::opt(gradient), retain_graph != 0));
}

lt_status lt_grad(const lt_tensor* t, lt_tensor** out) {
    LT_BODY(
        const auto x = T(t, "t");
        lt::GradLock lock(*x);
        *lt::need(out, "out") = lt::release(x->grad());
    );
}

lt_status lt_zero_grad(lt_tensor* t) {
    LT_BODY(
        const auto x = T(t, "t");
        lt::GradLock lock(*x);
        at::Tensor& g = x->mutable_grad();
        if (g.defined()) {
            c10::NoGradGuard no_grad;
            g.zero_();
        }
    );
}

lt_status lt_clear_grad(lt_tensor* t) {
    LT_BODY(
        const auto x = T(t, "t");
        lt::GradLock lock(*x);
        x->mutable_grad().reset();
    );
}

lt_status lt_grad_set_enabled(int32_t enabled, int32_t* previous) {
    LT_BODY(
        *lt::need(previous, "previous") = c10::GradMode::is_enabled() ? 1 : 0;
        c10::GradMode::set_enabled(enabled != 0);
    );
}

int32_t lt_grad_is_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }

}  // extern "C"
