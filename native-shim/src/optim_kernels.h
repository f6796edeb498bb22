// Fused optimizer kernels (optim_kernels.cpp), used by optim.cpp. Internal to the shim.
#pragma once

#include <cstdint>

namespace lt::kernels {

struct AdamArgs {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;                // AdamW
    double step_size;              // lr / (1 - beta1^t)
    double bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};

struct SgdArgs {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
    bool first;  // the momentum buffer's first step (buf = d)
};

// One Adam update of n contiguous elements; vmax is NULL without amsgrad.
void adam_float(float* p, const float* g, float* m, float* v, float* vmax, int64_t n, const AdamArgs& a);
void adam_double(double* p, const double* g, double* m, double* v, double* vmax, int64_t n, const AdamArgs& a);
// One SGD update; buf is NULL without momentum.
void sgd_float(float* p, const float* g, float* buf, int64_t n, const SgdArgs& a);
void sgd_double(double* p, const double* g, double* buf, int64_t n, const SgdArgs& a);

}  // namespace lt::kernels
