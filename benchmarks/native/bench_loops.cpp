// The C++ side of PerCallInterleaved (benchmarks/src/.../PerCallInterleaved.java): the same loop
// as `lora4j_bench_native add` (LibTorch's add of two 1-element float tensors, the result freed),
// as a library the Java tool calls between its own blocks of lora4j's add, in the same process,
// so that the machine's drift (whole minutes at 1.6x) hits both sides alike.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>

// Runs n adds and returns the nanoseconds per add; -1 for n < 1. Never throws.
extern "C" double lora4j_bench_add_loop(int64_t n) noexcept {
    if (n < 1) return -1;
    try {
        static const at::Tensor a = at::ones({1}), b = at::ones({1});
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < n; ++i) {
            at::Tensor c = at::add(a, b);
        }
        return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
               static_cast<double>(n);
    } catch (...) {
        return -1;
    }
}
