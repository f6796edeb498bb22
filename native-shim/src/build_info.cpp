// What the shim was built against: C++ ABI, CUDA, distributed, fused attention.
#include <link.h>

#include <cstring>

#include <ATen/Config.h>

#include "compat.h"
#include "internal.h"

extern "C" {

int32_t lt_build_cxx11_abi(void) {
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
    return 1;
#else
    return 0;
#endif
}

// CUDA is compiled in when LibTorch's CUDA library is part of the process (the shim links it
// whenever the LibTorch has it, see CMakeLists.txt), with or without a GPU.
int32_t lt_build_has_cuda(void) {
    int found = 0;
    dl_iterate_phdr(
        [](struct dl_phdr_info* info, size_t, void* data) {
            const char* name = info->dlpi_name;
            if (name != nullptr && std::strstr(name, "libtorch_cuda") != nullptr) *static_cast<int*>(data) = 1;
            return *static_cast<int*>(data);
        },
        &found);
    return found;
}

int32_t lt_build_has_distributed(void) { return LT_HAS_DISTRIBUTED; }

int32_t lt_build_has_fused_attention(void) { return LT_HAS_FUSED_ATTENTION ? 1 : 0; }

// Whether the shim's own parallel loops (at::parallel_for, a header template) run on LibTorch's
// intra-op threads: with an OpenMP LibTorch only when the shim was compiled with OpenMP too.
int32_t lt_build_intra_op_parallel(void) {
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
    return 0;
#else
    return 1;
#endif
}

}  // extern "C"
