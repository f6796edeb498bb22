// Large matrix products split over LibTorch's intra-op threads, the BLAS running single-threaded
// inside them. Internal to the shim.
//
// Why: Debian's OpenBLAS (libopenblas0-pthread) runs its products on a thread pool of its own,
// whose threads spin after every product while LibTorch's OpenMP threads want the same cores for
// the next operation (softmax, GELU, the attention loop, whose per-slice products would call a
// multi-threaded BLAS from several threads at once). On 2 cores that fight cost a BERT forward a
// quarter of its time at 2 threads. So at load the shim pins OpenBLAS to one thread
// (LORA4J_BLAS_THREADS=n, read once, pins it to n instead; anything but a number means 1), and the
// products lora4j runs itself (linear layers and their backward, LoRA's base product, mm/matmul
// without a graph) are cut into one block of rows or columns per intra-op thread: one OpenMP pool,
// passive between regions, does all the work.
#pragma once

#include <ATen/ATen.h>

namespace lt::split {

// The thread count OpenBLAS was pinned to at load (1 unless LORA4J_BLAS_THREADS says otherwise), or
// 0 when LibTorch's BLAS is not OpenBLAS.
int blas_threads();

// Whether a·b (a (M, K), b (K, N)) is worth splitting: float32 or float64 on the CPU, OpenBLAS
// pinned to one thread (another BLAS may thread on its own and is left alone), more than one
// intra-op thread, not already inside a parallel region, and at least kMinWork multiply-adds per
// thread.
bool worth(const at::Tensor& a, const at::Tensor& b);

// beta·bias + alpha·a·b as at::addmm, bias (N) or (M, N) or undefined (then a·b scaled by alpha),
// split over the intra-op threads when worth(a, b), else at::addmm / at::mm. Never records a graph:
// callers that need one record their own node.
at::Tensor addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b, double alpha = 1);

// a·b: addmm without a bias.
inline at::Tensor mm(const at::Tensor& a, const at::Tensor& b) { return lt::split::addmm(at::Tensor(), a, b); }

}  // namespace lt::split
