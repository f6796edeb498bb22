// See split_gemm.h.
#include "split_gemm.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace lt::split {

namespace {

// Multiply-adds per thread below which a split does not pay: a passive OpenMP wake-up costs tens
// of microseconds, a million multiply-adds about twenty.
constexpr int64_t kMinWork = int64_t{1} << 21;
// Blocks start at multiples of this many rows or columns (whole BLAS micro-tiles).
constexpr int64_t kAlign = 16;

using get_fn = int (*)();
using set_fn = void (*)(int);

// Pins OpenBLAS once, when the shim loads (LibTorch, and with it the BLAS, is loaded already).
int pin_blas() {
    auto set = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    auto get = reinterpret_cast<get_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (!set || !get) return 0;
    int n = 1;
    if (const char* env = std::getenv("LORA4J_BLAS_THREADS")) {
        try {
            n = std::max(1, std::stoi(env));
        } catch (...) {
            n = 1;  // not a number: the default
        }
    }
    set(n);
    return get();
}

const int pinned = pin_blas();

}  // namespace

int blas_threads() { return pinned; }

bool worth(const at::Tensor& a, const at::Tensor& b) {
    if (pinned != 1 || a.dim() != 2 || b.dim() != 2 || !a.device().is_cpu() || !b.device().is_cpu() ||
        a.scalar_type() != b.scalar_type() || (a.scalar_type() != at::kFloat && a.scalar_type() != at::kDouble) ||
        a.size(1) != b.size(0) || at::in_parallel_region())
        return false;
    const int64_t threads = at::get_num_threads();
    if (threads < 2) return false;
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    return std::max(M, N) >= 2 * kAlign && static_cast<double>(M) * K * N >= static_cast<double>(kMinWork) * threads;
}

at::Tensor addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b, double alpha) {
    c10::AutoGradMode no_grad(false);
    if (!worth(a, b)) {
        if (bias.defined()) return at::addmm(bias, a, b, 1, alpha);
        at::Tensor y = at::mm(a, b);
        return alpha == 1 ? y : y.mul_(alpha);
    }
    const int64_t M = a.size(0), N = b.size(1);
    if (bias.defined()) {
        const bool ok = (bias.dim() == 1 && bias.size(0) == N) || (bias.dim() == 2 && bias.size(0) == M && bias.size(1) == N);
        if (!ok || bias.scalar_type() != a.scalar_type() || !bias.device().is_cpu())
            return at::addmm(bias, a, b, 1, alpha);  // ATen's message for what it refuses
    }
    at::Tensor out = at::empty({M, N}, a.options());
    const bool rows = M >= N;  // cut the longer side of the result
    const int64_t extent = rows ? M : N, parts = at::get_num_threads();
    const int64_t step = (extent + parts - 1) / parts;
    const int64_t block = std::max(kAlign, (step + kAlign - 1) / kAlign * kAlign);
    const int64_t blocks = (extent + block - 1) / block;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
        c10::InferenceMode guard;  // views and products of the blocks need no autograd bookkeeping
        for (int64_t i = begin; i < end; i++) {
            const int64_t start = i * block, len = std::min(block, extent - start);
            at::Tensor o = out.narrow(rows ? 0 : 1, start, len);
            const at::Tensor ai = rows ? a.narrow(0, start, len) : a;
            const at::Tensor bi = rows ? b : b.narrow(1, start, len);
            if (bias.defined()) {
                const at::Tensor ci = bias.dim() == 1 ? (rows ? bias : bias.narrow(0, start, len))
                                                      : bias.narrow(rows ? 0 : 1, start, len);
                at::addmm_out(o, ci, ai, bi, 1, alpha);
            } else {
                at::mm_out(o, ai, bi);
                if (alpha != 1) o.mul_(alpha);
            }
        }
    });
    return out;
}

}  // namespace lt::split
