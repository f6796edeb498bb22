// See small_gemm.h. AVX2+FMA through GCC's vector extensions and AVX-512 through its
// intrinsics, each compiled for its target alone and chosen at run time, so the shim still runs
// on CPUs without them (callers check available()).
#include "small_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace lt::gemm {

#if defined(__x86_64__) && defined(__GNUC__)

namespace {

typedef float v8 __attribute__((vector_size(32)));

#define LT_AVX2 __attribute__((target("avx2,fma")))

LT_AVX2 inline v8 load(const float* p) {
    v8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

LT_AVX2 inline void store(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }

// NB weight rows × MB rows of x: NB·MB accumulators of 8 lanes along k, summed at the end.
template <int NB, int MB>
LT_AVX2 __attribute__((always_inline)) inline void xwt_tile(const float* x, int64_t K, const float* w, float* y, int64_t N,
                                                            const float* bias) {
    v8 acc[NB][MB];
    for (int i = 0; i < NB; ++i)
        for (int m = 0; m < MB; ++m) acc[i][m] = v8{};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        v8 wv[NB];
        for (int i = 0; i < NB; ++i) wv[i] = load(w + i * K + k);
        for (int m = 0; m < MB; ++m) {
            const v8 xv = load(x + m * K + k);
            for (int i = 0; i < NB; ++i) acc[i][m] += xv * wv[i];
        }
    }
    for (int i = 0; i < NB; ++i) {
        for (int m = 0; m < MB; ++m) {
            const v8 a = acc[i][m];
            float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
            for (int64_t j = k; j < K; ++j) s += x[m * K + j] * w[i * K + j];
            y[m * N + i] = bias != nullptr ? s + bias[i] : s;
        }
    }
}

template <int MB>
LT_AVX2 void xwt_rows(const float* x, int64_t K, const float* w, int64_t N, const float* bias, float* y, int64_t n0,
                      int64_t n1) {
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2) xwt_tile<2, MB>(x, K, w + n * K, y + n, N, bias != nullptr ? bias + n : nullptr);
    for (; n < n1; ++n) xwt_tile<1, MB>(x, K, w + n * K, y + n, N, bias != nullptr ? bias + n : nullptr);
}

// MB rows of g × 8·KB columns of w: for every n, KB weight vectors times MB broadcasts.
template <int KB, int MB>
LT_AVX2 __attribute__((always_inline)) inline void gw_tile(const float* g, int64_t N, const float* w, int64_t K, float* y) {
    v8 acc[MB][KB];
    for (int m = 0; m < MB; ++m)
        for (int j = 0; j < KB; ++j) acc[m][j] = v8{};
    for (int64_t n = 0; n < N; ++n) {
        v8 wv[KB];
        for (int j = 0; j < KB; ++j) wv[j] = load(w + n * K + 8 * j);
        for (int m = 0; m < MB; ++m) {
            const float gs = g[m * N + n];
            const v8 gv = {gs, gs, gs, gs, gs, gs, gs, gs};
            for (int j = 0; j < KB; ++j) acc[m][j] += gv * wv[j];
        }
    }
    for (int m = 0; m < MB; ++m)
        for (int j = 0; j < KB; ++j) store(y + m * K + 8 * j, acc[m][j]);
}

template <int MB>
LT_AVX2 void gw_rows(const float* g, int64_t N, const float* w, int64_t K, float* y, int64_t k0, int64_t k1) {
    int64_t k = k0;
    for (; k + 16 <= k1; k += 16) gw_tile<2, MB>(g, N, w + k, K, y + k);
    for (; k + 8 <= k1; k += 8) gw_tile<1, MB>(g, N, w + k, K, y + k);
    for (; k < k1; ++k) {
        for (int m = 0; m < MB; ++m) {
            float s = 0;
            for (int64_t n = 0; n < N; ++n) s += g[m * N + n] * w[n * K + k];
            y[m * K + k] = s;
        }
    }
}

// GCC 12 warns of the "undefined" operand its own _mm512_reduce_add_ps passes.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// AVX-512: 16 lanes and 32 registers, so a tile holds more rows of the left operand (blocks of
// rows: see xwt and gw below); a ragged end of k (xwt) or of the columns (gw) is one masked step.
#define LT_AVX512 __attribute__((target("avx512f,avx2,fma")))

// One step of 16 along k of xwt_tile16 (mask: which of the 16 to take).
template <int NB, int MB>
LT_AVX512 __attribute__((always_inline)) inline void xwt_step16(__m512 (&acc)[NB][MB], const float* x, int64_t K,
                                                                const float* w, int64_t k, __mmask16 mask) {
    __m512 wv[NB];
#pragma GCC unroll 16
    for (int i = 0; i < NB; ++i) wv[i] = _mm512_maskz_loadu_ps(mask, w + i * K + k);
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * K + k);
#pragma GCC unroll 16
        for (int i = 0; i < NB; ++i) acc[i][m] = _mm512_fmadd_ps(xv, wv[i], acc[i][m]);
    }
}

// NB weight rows × MB rows of x, as xwt_tile.
template <int NB, int MB>
LT_AVX512 __attribute__((always_inline)) inline void xwt_tile16(const float* x, int64_t K, const float* w, float* y,
                                                                int64_t N, const float* bias) {
    __m512 acc[NB][MB];
#pragma GCC unroll 16
    for (int i = 0; i < NB; ++i)
#pragma GCC unroll 16
        for (int m = 0; m < MB; ++m) acc[i][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) xwt_step16(acc, x, K, w, k, 0xffff);
    if (k < K) xwt_step16(acc, x, K, w, k, static_cast<__mmask16>((1u << (K - k)) - 1));
#pragma GCC unroll 16
    for (int i = 0; i < NB; ++i)
#pragma GCC unroll 16
        for (int m = 0; m < MB; ++m) {
            const float s = _mm512_reduce_add_ps(acc[i][m]);
            y[m * N + i] = bias != nullptr ? s + bias[i] : s;
        }
}

template <int MB>
LT_AVX512 void xwt_rows16(const float* x, int64_t K, const float* w, int64_t N, const float* bias, float* y, int64_t n0,
                          int64_t n1) {
    constexpr int NB = 4;  // 4·6 accumulators, 4 weight vectors and one of x: 29 of 32 registers
    int64_t n = n0;
    for (; n + NB <= n1; n += NB) xwt_tile16<NB, MB>(x, K, w + n * K, y + n, N, bias != nullptr ? bias + n : nullptr);
    for (; n < n1; ++n) xwt_tile16<1, MB>(x, K, w + n * K, y + n, N, bias != nullptr ? bias + n : nullptr);
}

// MB rows of g × KB vectors of 16 columns of w, as gw_tile; mask selects the last vector's
// columns (a ragged end).
template <int KB, int MB>
LT_AVX512 __attribute__((always_inline)) inline void gw_tile16(const float* g, int64_t N, const float* w, int64_t K,
                                                               float* y, __mmask16 mask) {
    __m512 acc[MB][KB];
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 16
        for (int j = 0; j < KB; ++j) acc[m][j] = _mm512_setzero_ps();
    for (int64_t n = 0; n < N; ++n) {
        __m512 wv[KB];
#pragma GCC unroll 16
        for (int j = 0; j < KB; ++j) wv[j] = _mm512_maskz_loadu_ps(j == KB - 1 ? mask : 0xffff, w + n * K + 16 * j);
#pragma GCC unroll 16
        for (int m = 0; m < MB; ++m) {
            const __m512 gv = _mm512_set1_ps(g[m * N + n]);
#pragma GCC unroll 16
            for (int j = 0; j < KB; ++j) acc[m][j] = _mm512_fmadd_ps(gv, wv[j], acc[m][j]);
        }
    }
#pragma GCC unroll 16
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 16
        for (int j = 0; j < KB; ++j) _mm512_mask_storeu_ps(y + m * K + 16 * j, j == KB - 1 ? mask : 0xffff, acc[m][j]);
}

template <int MB>
LT_AVX512 void gw_rows16(const float* g, int64_t N, const float* w, int64_t K, float* y, int64_t k0, int64_t k1) {
    constexpr int KB = 2;  // 12·2 accumulators and 2 weight vectors: 26 of 32 registers
    int64_t k = k0;
    for (; k + 16 * KB <= k1; k += 16 * KB) gw_tile16<KB, MB>(g, N, w + k, K, y + k, 0xffff);
    for (; k + 16 <= k1; k += 16) gw_tile16<1, MB>(g, N, w + k, K, y + k, 0xffff);
    if (k < k1) gw_tile16<1, MB>(g, N, w + k, K, y + k, static_cast<__mmask16>((1u << (k1 - k)) - 1));
}

#pragma GCC diagnostic pop

// Splits M rows into blocks of at most Max rows, as even as they come (10 = 5 + 5 for Max 6),
// and calls f(std::integral_constant<int, rows>{}, first row) for each.
template <int Max, typename F>
void blocks(int64_t M, F f) {
    const int64_t count = (M + Max - 1) / Max;
    for (int64_t b = 0, m0 = 0; b < count; ++b) {
        const int64_t rows = (M - m0) / (count - b);
        switch (rows) {
#define LT_ROWS(r)                                                       \
    case r:                                                              \
        if constexpr (r <= Max) f(std::integral_constant<int, r>{}, m0); \
        break;
            LT_ROWS(1) LT_ROWS(2) LT_ROWS(3) LT_ROWS(4) LT_ROWS(5) LT_ROWS(6)
            LT_ROWS(7) LT_ROWS(8) LT_ROWS(9) LT_ROWS(10) LT_ROWS(11) LT_ROWS(12)
#undef LT_ROWS
        }
        m0 += rows;
    }
}

enum class Isa { none, avx2, avx512 };

// The kernels this CPU runs, chosen once: AVX-512 where the CPU has it, else AVX2+FMA, else
// none; LORA4J_SMALL_GEMM=avx2 keeps to AVX2, LORA4J_SMALL_GEMM=off to ATen.
Isa isa() {
    static const Isa chosen = [] {
        const char* env = std::getenv("LORA4J_SMALL_GEMM");
        const std::string want = env != nullptr ? env : "";
        if (want == "off" || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::none;
        if (want != "avx2" && __builtin_cpu_supports("avx512f")) return Isa::avx512;
        return Isa::avx2;
    }();
    return chosen;
}

}  // namespace

bool available() { return isa() != Isa::none; }

const char* kernels() {
    switch (isa()) {
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        default: return "off";
    }
}

// AVX2 runs over the rows of the left operand in blocks of at most 5: 10 accumulators, which
// with the loaded operands fit its 16 vector registers. AVX-512 could take 10 rows (xwt) or 16
// (gw) in one pass over the weight, but measured faster on Zen 5 in blocks of at most 6 rows ×
// 4 weight rows (xwt: 10 rows in 100 µs against 160 µs in one pass, 784×1000) and of at most
// 12 rows × 32 columns (gw); a weight of a few MB stays in the cache between the passes.
void xwt(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias, float* y, int64_t n0,
         int64_t n1) {
    if (isa() == Isa::avx512) {
        blocks<6>(M, [&](auto mb, int64_t m0) {
            xwt_rows16<decltype(mb)::value>(x + m0 * K, K, w, N, bias, y + m0 * N, n0, n1);
        });
        return;
    }
    for (int64_t m0 = 0; m0 < M; m0 += 5) {
        const float* xm = x + m0 * K;
        float* ym = y + m0 * N;
        switch (std::min<int64_t>(5, M - m0)) {
            case 5: xwt_rows<5>(xm, K, w, N, bias, ym, n0, n1); break;
            case 4: xwt_rows<4>(xm, K, w, N, bias, ym, n0, n1); break;
            case 3: xwt_rows<3>(xm, K, w, N, bias, ym, n0, n1); break;
            case 2: xwt_rows<2>(xm, K, w, N, bias, ym, n0, n1); break;
            default: xwt_rows<1>(xm, K, w, N, bias, ym, n0, n1); break;
        }
    }
}

void gw(const float* g, int64_t M, int64_t N, const float* w, int64_t K, float* y, int64_t k0, int64_t k1) {
    if (isa() == Isa::avx512) {
        blocks<12>(M, [&](auto mb, int64_t m0) {
            gw_rows16<decltype(mb)::value>(g + m0 * N, N, w, K, y + m0 * K, k0, k1);
        });
        return;
    }
    for (int64_t m0 = 0; m0 < M; m0 += 5) {
        const float* gm = g + m0 * N;
        float* ym = y + m0 * K;
        switch (std::min<int64_t>(5, M - m0)) {
            case 5: gw_rows<5>(gm, N, w, K, ym, k0, k1); break;
            case 4: gw_rows<4>(gm, N, w, K, ym, k0, k1); break;
            case 3: gw_rows<3>(gm, N, w, K, ym, k0, k1); break;
            case 2: gw_rows<2>(gm, N, w, K, ym, k0, k1); break;
            default: gw_rows<1>(gm, N, w, K, ym, k0, k1); break;
        }
    }
}

#else

bool available() { return false; }
const char* kernels() { return "off"; }
void xwt(const float*, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t) {}
void gw(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int64_t) {}

#endif

}  // namespace lt::gemm
