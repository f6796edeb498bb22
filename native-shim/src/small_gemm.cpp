// See small_gemm.h. AVX2+FMA through GCC's vector extensions; chosen at run time, so the shim
// still runs on CPUs without them (callers check available()).
#include "small_gemm.h"

#include <algorithm>
#include <cstring>

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

}  // namespace

// Both run over the rows of the left operand in blocks of at most 5: 10 accumulators, which
// with the loaded operands fit AVX2's 16 vector registers.
bool available() {
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok;
}

void xwt(const float* x, int64_t M, int64_t K, const float* w, int64_t N, const float* bias, float* y, int64_t n0,
         int64_t n1) {
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
void xwt(const float*, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t) {}
void gw(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, int64_t) {}

#endif

}  // namespace lt::gemm
