// Matrix products with a short left operand (a few rows: the batch of a LoRA training step)
// against a large row-major weight, without packing the weight: each weight element is read
// once per block of rows and used for every row of the block while in registers. Generic BLAS packs the whole
// weight into a buffer first, which for so few rows costs about as much as the arithmetic.
// Internal to the shim; float32, contiguous, CPU.
//
// Kernels, chosen once at run time: AVX-512 (16 lanes, 32 registers: blocks of up to 6 rows
// for xwt, 12 for gw) where the CPU has avx512f, else AVX2+FMA (8 lanes, 16 registers: blocks
// of 5 rows), else none (callers use ATen). The environment variable LORA4J_SMALL_GEMM, read once,
// overrides: "avx2" keeps to the AVX2 kernels, "off" to ATen (to test and measure each path on
// one machine). The paths sum in different orders, so their results differ by float32 rounding.
#pragma once

#include <cstdint>

namespace lt::gemm {

// The most rows of the left operand for which these products beat a packing BLAS.
constexpr int64_t kMaxRows = 16;

// Whether this CPU runs the kernels (AVX2 and FMA at least); the callers use ATen otherwise.
bool available();

// The kernels in use: "avx512", "avx2" or "off".
const char* kernels();

// y[m, n] = bias[n] + Σ_k x[m, k]·w[n, k] for n in [n0, n1): x (M, K), w (N, K), y (M, N);
// bias may be NULL.
void xwt(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias, float* y, int64_t n0,
         int64_t n1);

// y[m, k] = Σ_n g[m, n]·w[n, k] for k in [k0, k1): g (M, N), w (N, K), y (M, K).
void gw(const float* g, int64_t M, int64_t N, const float* w, int64_t K, float* y, int64_t k0, int64_t k1);

}  // namespace lt::gemm
