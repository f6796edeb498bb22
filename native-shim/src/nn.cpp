// Neural-network functional operations, losses and initialisers.
#include <c10/core/GradMode.h>
#include <torch/nn/init.h>

#include "internal.h"
#include "small_linear.h"

using lt::T;

extern "C" {

lt_status lt_linear(const lt_tensor* input, const lt_tensor* weight, const lt_tensor* bias,
                    lt_tensor** out) {
    // A few rows in float32 on the CPU run in the shim's small-batch kernels (small_linear.h).
    LT_BODY(lt::put(lt::need(out, "out"), lt::small::linear(*T(input, "input"), *T(weight, "weight"), lt::opt(bias))));
}

lt_status lt_conv(const lt_tensor* input, const lt_tensor* weight, const lt_tensor* bias,
                  int32_t spatial_dims, const int64_t* stride, const int64_t* padding,
                  const int64_t* dilation, int64_t groups, lt_tensor** out) {
    LT_BODY(
        lt::need(out, "out");
        const lt::Borrowed x_ = T(input, "input"); const at::Tensor& x = *x_;
        const lt::Borrowed w_ = T(weight, "weight"); const at::Tensor& w = *w_;
        auto s = lt::dims(stride, spatial_dims, "stride");
        auto p = lt::dims(padding, spatial_dims, "padding");
        auto d = lt::dims(dilation, spatial_dims, "dilation");
        switch (spatial_dims) {
            case 1: lt::put(out, at::conv1d(x, w, lt::opt(bias), s, p, d, groups)); break;
            case 2: lt::put(out, at::conv2d(x, w, lt::opt(bias), s, p, d, groups)); break;
            case 3: lt::put(out, at::conv3d(x, w, lt::opt(bias), s, p, d, groups)); break;
            default:
                throw std::invalid_argument("spatial_dims must be 1, 2 or 3, got " +
                                            std::to_string(spatial_dims));
        }
    );
}

lt_status lt_embedding(const lt_tensor* weight, const lt_tensor* indices, int64_t padding_idx,
                       lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    at::embedding(*T(weight, "weight"), *T(indices, "indices"),
                                  padding_idx < 0 ? -1 : padding_idx)));
}

lt_status lt_dropout(const lt_tensor* input, double p, int32_t train, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::dropout(*T(input, "input"), p, train != 0)));
}

lt_status lt_softmax(const lt_tensor* input, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::softmax(*T(input, "input"), dim)));
}

lt_status lt_log_softmax(const lt_tensor* input, int64_t dim, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::log_softmax(*T(input, "input"), dim)));
}

lt_status lt_cross_entropy(const lt_tensor* input, const lt_tensor* target, const lt_tensor* weight,
                           int32_t reduction, int64_t ignore_index, double label_smoothing,
                           lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    at::cross_entropy_loss(*T(input, "input"), *T(target, "target"), lt::opt(weight),
                                           reduction, ignore_index, label_smoothing)));
}

lt_status lt_nll_loss(const lt_tensor* input, const lt_tensor* target, const lt_tensor* weight,
                      int32_t reduction, int64_t ignore_index, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    at::nll_loss_nd(*T(input, "input"), *T(target, "target"), lt::opt(weight), reduction,
                                    ignore_index)));
}

lt_status lt_mse_loss(const lt_tensor* input, const lt_tensor* target, int32_t reduction,
                      lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::mse_loss(*T(input, "input"), *T(target, "target"), reduction)));
}

lt_status lt_kaiming_uniform_(lt_tensor* t, double a) {
    LT_BODY(at::Tensor w = *T(t, "t"); torch::nn::init::kaiming_uniform_(w, a, torch::kFanIn, torch::kLeakyReLU));
}

lt_status lt_normal_(lt_tensor* t, double mean, double std) {
    LT_BODY(c10::NoGradGuard g; T(t, "t")->normal_(mean, std));
}

lt_status lt_uniform_(lt_tensor* t, double from, double to) {
    LT_BODY(c10::NoGradGuard g; T(t, "t")->uniform_(from, to));
}

lt_status lt_zeros_(lt_tensor* t) { LT_BODY(c10::NoGradGuard g; T(t, "t")->zero_()); }

}  // extern "C"
