// Library-wide settings: version, threads, seed, devices.
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

#include "internal.h"
#include "split_gemm.h"

extern "C" {

const char* lt_version(void) { return TORCH_VERSION; }

lt_status lt_set_num_threads(int32_t n) {
    LT_BODY(
        if (n < 1) throw std::invalid_argument("number of threads must be >= 1, got " +
                                               std::to_string(n));
        // OpenBLAS stays at the thread count the shim pinned it to at load (split_gemm.h).
        at::set_num_threads(n);
    );
}

int32_t lt_get_num_threads(void) { return at::get_num_threads(); }

int32_t lt_blas_threads(void) { return lt::split::blas_threads(); }

lt_status lt_manual_seed(uint64_t seed) { LT_BODY(at::manual_seed(seed)); }

int32_t lt_device_count(int32_t device_type) {
    try {
        if (device_type == LT_DEVICE_CPU) return 1;
        if (device_type == LT_DEVICE_CUDA)
            return at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
    } catch (...) {
    }
    return 0;
}

}  // extern "C"
