// Elementwise operations, reductions and shape operations.
#include <vector>

#include <c10/core/GradMode.h>

#include "internal.h"
#include "small_linear.h"
#include "split_gemm.h"

using lt::T;

namespace {

std::vector<at::Tensor> tensor_list(const lt_tensor* const* ts, int64_t count) {
    if (count < 1) throw std::invalid_argument("expected at least one tensor");
    lt::need(ts, "tensors");
    std::vector<at::Tensor> v;
    v.reserve(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) v.push_back(*T(ts[i], "tensors[i]"));
    return v;
}

// a·b as at::mm (mm) or at::matmul: split over the intra-op threads (split_gemm.h) when no graph
// is needed and it is one matrix product (b 2-D; a 2-D, or for matmul a batch of rows).
at::Tensor product(const at::Tensor& a, const at::Tensor& b, bool mm) {
    const bool graph = c10::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
    if (!graph && b.dim() == 2 && (a.dim() == 2 || (!mm && a.dim() > 2))) {
        const at::Tensor a2 = lt::small::rows(a);
        if (lt::split::worth(a2, b)) {
            at::Tensor y = lt::split::mm(a2, b);
            if (a.dim() == 2) return y;
            std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end());
            sizes.back() = b.size(1);
            return y.view(sizes);
        }
    }
    return mm ? at::mm(a, b) : at::matmul(a, b);
}

}  // namespace

extern "C" {

lt_status lt_add(const lt_tensor* a, const lt_tensor* b, double alpha, lt_tensor** out) {
    LT_BODY(
        const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_;
        lt::put(lt::need(out, "out"),
                alpha == 1.0 ? at::add(x, *T(b, "b")) : at::add(x, *T(b, "b"), lt::scalar_for(x, alpha)));
    );
}

lt_status lt_sub(const lt_tensor* a, const lt_tensor* b, double alpha, lt_tensor** out) {
    LT_BODY(
        const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_;
        lt::put(lt::need(out, "out"),
                alpha == 1.0 ? at::sub(x, *T(b, "b")) : at::sub(x, *T(b, "b"), lt::scalar_for(x, alpha)));
    );
}

lt_status lt_mul(const lt_tensor* a, const lt_tensor* b, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::mul(*T(a, "a"), *T(b, "b"))));
}

lt_status lt_div(const lt_tensor* a, const lt_tensor* b, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::div(*T(a, "a"), *T(b, "b"))));
}

lt_status lt_add_scalar(const lt_tensor* a, double s, lt_tensor** out) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; lt::put(lt::need(out, "out"), at::add(x, lt::scalar_for(x, s))));
}

lt_status lt_sub_scalar(const lt_tensor* a, double s, lt_tensor** out) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; lt::put(lt::need(out, "out"), at::sub(x, lt::scalar_for(x, s))));
}

lt_status lt_mul_scalar(const lt_tensor* a, double s, lt_tensor** out) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; lt::put(lt::need(out, "out"), at::mul(x, lt::scalar_for(x, s))));
}

lt_status lt_div_scalar(const lt_tensor* a, double s, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::div(*T(a, "a"), at::Scalar(s))));
}

lt_status lt_pow_scalar(const lt_tensor* a, double exponent, lt_tensor** out) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; lt::put(lt::need(out, "out"), at::pow(x, lt::scalar_for(x, exponent))));
}

lt_status lt_pow(const lt_tensor* a, const lt_tensor* exponent, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::pow(*T(a, "a"), *T(exponent, "exponent"))));
}

lt_status lt_unary(const lt_tensor* a, int32_t op, lt_tensor** out) {
    LT_BODY(
        const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_;
        at::Tensor r;
        switch (op) {
            case LT_UNARY_NEG: r = at::neg(x); break;
            case LT_UNARY_EXP: r = at::exp(x); break;
            case LT_UNARY_LOG: r = at::log(x); break;
            case LT_UNARY_SQRT: r = at::sqrt(x); break;
            case LT_UNARY_ABS: r = at::abs(x); break;
            case LT_UNARY_RELU: r = at::relu(x); break;
            case LT_UNARY_SIGMOID: r = at::sigmoid(x); break;
            case LT_UNARY_TANH: r = at::tanh(x); break;
            case LT_UNARY_GELU: r = at::gelu(x, "none"); break;
            case LT_UNARY_GELU_TANH: r = at::gelu(x, "tanh"); break;
            default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
        }
        lt::put(lt::need(out, "out"), std::move(r));
    );
}

lt_status lt_add_(lt_tensor* a, const lt_tensor* b, double alpha) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; x.add_(*T(b, "b"), lt::scalar_for(x, alpha)));
}

lt_status lt_mul_(lt_tensor* a, const lt_tensor* b) { LT_BODY(T(a, "a")->mul_(*T(b, "b"))); }

lt_status lt_add_scalar_(lt_tensor* a, double s) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; x.add_(lt::scalar_for(x, s)));
}

lt_status lt_mul_scalar_(lt_tensor* a, double s) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; x.mul_(lt::scalar_for(x, s)));
}

lt_status lt_copy_(lt_tensor* dst, const lt_tensor* src) { LT_BODY(T(dst, "dst")->copy_(*T(src, "src"))); }

lt_status lt_zero_(lt_tensor* a) { LT_BODY(T(a, "a")->zero_()); }

lt_status lt_fill_(lt_tensor* a, double value) {
    LT_BODY(const lt::Borrowed x_ = T(a, "a"); const at::Tensor& x = *x_; x.fill_(lt::stored_value(x.scalar_type(), value)));
}

lt_status lt_sum(const lt_tensor* a, lt_tensor** out) { LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->sum())); }

lt_status lt_mean(const lt_tensor* a, lt_tensor** out) { LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->mean())); }

lt_status lt_sum_dims(const lt_tensor* a, const int64_t* dims, int64_t ndims, int32_t keepdim,
                      lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->sum(lt::dims(dims, ndims, "dims"), keepdim != 0)));
}

lt_status lt_mean_dims(const lt_tensor* a, const int64_t* dims, int64_t ndims, int32_t keepdim,
                       lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->mean(lt::dims(dims, ndims, "dims"), keepdim != 0)));
}

lt_status lt_max_dim(const lt_tensor* a, int64_t dim, int32_t keepdim, lt_tensor** values,
                     lt_tensor** indices) {
    LT_BODY(
        lt::need(values, "values");
        lt::need(indices, "indices");
        auto r = at::max(*T(a, "a"), dim, keepdim != 0);
        lt::put(values, std::get<0>(r));
        lt::put(indices, std::get<1>(r));
    );
}

lt_status lt_max(const lt_tensor* a, lt_tensor** out) { LT_BODY(lt::put(lt::need(out, "out"), at::max(*T(a, "a")))); }

lt_status lt_argmax(const lt_tensor* a, int64_t dim, int32_t keepdim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::argmax(*T(a, "a"), dim, keepdim != 0)));
}

lt_status lt_matmul(const lt_tensor* a, const lt_tensor* b, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), product(*T(a, "a"), *T(b, "b"), /*mm=*/false)));
}

lt_status lt_mm(const lt_tensor* a, const lt_tensor* b, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), product(*T(a, "a"), *T(b, "b"), /*mm=*/true)));
}

lt_status lt_t(const lt_tensor* a, lt_tensor** out) { LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->t())); }

lt_status lt_transpose(const lt_tensor* a, int64_t dim0, int64_t dim1, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->transpose(dim0, dim1)));
}

lt_status lt_permute(const lt_tensor* a, const int64_t* dims, int64_t ndims, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->permute(lt::dims(dims, ndims, "dims"))));
}

lt_status lt_reshape(const lt_tensor* a, const int64_t* shape, int64_t ndim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->reshape(lt::dims(shape, ndim, "shape"))));
}

lt_status lt_view(const lt_tensor* a, const int64_t* shape, int64_t ndim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->view(lt::dims(shape, ndim, "shape"))));
}

lt_status lt_narrow(const lt_tensor* a, int64_t dim, int64_t start, int64_t length, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->narrow(dim, start, length)));
}

lt_status lt_index_select(const lt_tensor* a, int64_t dim, const lt_tensor* index, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::index_select(*T(a, "a"), dim, *T(index, "index"))));
}

lt_status lt_cat(const lt_tensor* const* tensors, int64_t count, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::cat(tensor_list(tensors, count), dim)));
}

lt_status lt_stack(const lt_tensor* const* tensors, int64_t count, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::stack(tensor_list(tensors, count), dim)));
}

lt_status lt_squeeze(const lt_tensor* a, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->squeeze(dim)));
}

lt_status lt_squeeze_all(const lt_tensor* a, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->squeeze()));
}

lt_status lt_unsqueeze(const lt_tensor* a, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(a, "a")->unsqueeze(dim)));
}

}  // extern "C"
