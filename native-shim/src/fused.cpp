// Fused kernels for hot paths that would otherwise take many downcalls and dispatches.
#include <ATen/Parallel.h>

#include <algorithm>
#include <string>
#include <vector>

#include "internal.h"
#include "small_gemm.h"

using lt::T;

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

// A dot product with 32 independent partial sums (four 8-wide float vectors), so the compiler
// vectorises it without reassociating additions on its own and the FMA latency is hidden.
template <typename S>
__attribute__((always_inline)) inline S dot(const S* a, const S* b, int64_t n) {
    S acc[32] = {};
    int64_t j = 0;
    for (; j + 32 <= n; j += 32)
        for (int l = 0; l < 32; ++l) acc[l] += a[j + l] * b[j + l];
    for (int l = 8; l < 32; ++l) acc[l % 8] += acc[l];
    S sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < n; ++j) sum += a[j] * b[j];
    return sum;
}

// The mixed-batch LoRA update of the token rows of batch rows order[begin..end): batch row i
// owns the `seq` contiguous token rows i·seq .. i·seq+seq-1 of x (N·seq, in) and uses adapter
// index[i] (order lists the batch rows that have one, grouped by adapter, so consecutive work
// reads the same factors from cache). Per token row: down = scale·A·x (rank dot products,
// the row read from L1), then out = downᵀ·Bᵀ accumulated in registers over the rank, 32
// output columns at a time, each written once. B is stored transposed, (R, out).
template <typename S>
__attribute__((always_inline)) inline void mixed_rows(int64_t begin, int64_t end, const int64_t* order, const int64_t* index,
                                                      int64_t seq, const S* xp, const S* ap, const S* bp, const S* sp, S* rp,
                                                      int64_t in, int64_t rank, int64_t outf) {
    std::vector<S> down(static_cast<size_t>(rank));
    for (int64_t w = begin; w < end; ++w) {
        const int64_t i = order[w], k = index[i];
        const S* ak = ap + k * rank * in;
        const S* bk = bp + k * rank * outf;
        const S s = sp[k];
        for (int64_t t = i * seq; t < (i + 1) * seq; ++t) {
            const S* xt = xp + t * in;
            for (int64_t r = 0; r < rank; ++r) down[static_cast<size_t>(r)] = dot(ak + r * in, xt, in) * s;
            // 32 output columns at a time summed over the rank in registers, stored once.
            S* rt = rp + t * outf;
            int64_t o = 0;
            for (; o + 32 <= outf; o += 32) {
                S acc[32] = {};
                for (int64_t r = 0; r < rank; ++r) {
                    const S d = down[static_cast<size_t>(r)];
                    const S* brow = bk + r * outf + o;
                    for (int l = 0; l < 32; ++l) acc[l] += d * brow[l];
                }
                for (int l = 0; l < 32; ++l) rt[o + l] = acc[l];
            }
            for (; o < outf; ++o) {
                S acc = 0;
                for (int64_t r = 0; r < rank; ++r) acc += down[static_cast<size_t>(r)] * bk[r * outf + o];
                rt[o] = acc;
            }
        }
    }
}

// Compiled twice each (AVX2+FMA and the x86-64 baseline) and picked at load time by the CPU
// (x86-64-v3: AVX2 and FMA), so the packaged library runs everywhere and uses 8-wide FMA where it can.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void mixed_rows_f32(int64_t begin, int64_t end, const int64_t* order, const int64_t* index, int64_t seq, const float* xp,
                    const float* ap, const float* bp, const float* sp, float* rp, int64_t in, int64_t rank, int64_t outf) {
    mixed_rows<float>(begin, end, order, index, seq, xp, ap, bp, sp, rp, in, rank, outf);
}

__attribute__((target_clones("arch=x86-64-v3", "default")))
void mixed_rows_f64(int64_t begin, int64_t end, const int64_t* order, const int64_t* index, int64_t seq, const double* xp,
                    const double* ap, const double* bp, const double* sp, double* rp, int64_t in, int64_t rank, int64_t outf) {
    mixed_rows<double>(begin, end, order, index, seq, xp, ap, bp, sp, rp, in, rank, outf);
}


// Token rows per run (consecutive batch rows with the same adapter) from which two BLAS
// products per run beat the per-row kernel (a [batch, seq, in] batch with seq ≥ 16, or many
// equal neighbours in a 2-d one).
constexpr int64_t kBlasTokens = 16;

// The mean number of token rows of the runs of batch rows that use one adapter (rows without one excluded).
int64_t mean_run_tokens(const int64_t* index, int64_t count, int64_t seq) {
    int64_t runs = 0, rows = 0;
    for (int64_t i = 0; i < count; ++i) {
        if (index[i] < 0) continue;
        ++rows;
        if (i == 0 || index[i - 1] != index[i]) ++runs;
    }
    return runs == 0 ? 0 : rows * seq / runs;
}

// The update by runs: for each run of consecutive batch rows with adapter k, its token rows
// X (T, in) give out = (s_k · X · A_kᵀ) · B_kᵀ with two BLAS products written in place;
// rows without an adapter get zeros. x2 (N·seq, in) and out2 (N·seq, out) are views. Runs go
// one after another, each product on the (single-threaded) BLAS.
void blas_runs(const at::Tensor& x2, const at::Tensor& as, const at::Tensor& bs, const at::Tensor& ss,
               const int64_t* index, int64_t count, int64_t seq, at::Tensor out2) {
    const at::Tensor scales = ss.to(at::kDouble);
    const double* sp = scales.data_ptr<double>();
    for (int64_t i = 0; i < count;) {
        const int64_t k = index[i];
        int64_t j = i + 1;
        while (j < count && index[j] == k) ++j;
        at::Tensor block = out2.narrow(0, i * seq, (j - i) * seq);
        if (k < 0) {
            block.zero_();
        } else {
            at::Tensor down = at::mm(x2.narrow(0, i * seq, (j - i) * seq), as.select(0, k).t());
            down.mul_(sp[k]);
            at::mm_out(block, down, bs.select(0, k));
        }
        i = j;
    }
}

// Batch rows ordered by adapter, stably (a counting sort): order[start[k] .. start[k+1]) are
// adapter k's rows, in batch order; rows without an adapter (index < 0) are left out.
struct Groups {
    std::vector<int64_t> start, order;
};

Groups by_adapter(const int64_t* index, int64_t count, int64_t n) {
    Groups g{std::vector<int64_t>(static_cast<size_t>(n + 1), 0), {}};
    for (int64_t i = 0; i < count; ++i)
        if (index[i] >= 0) g.start[static_cast<size_t>(index[i] + 1)]++;
    for (int64_t k = 0; k < n; ++k) g.start[static_cast<size_t>(k + 1)] += g.start[static_cast<size_t>(k)];
    g.order.resize(static_cast<size_t>(g.start[static_cast<size_t>(n)]));
    std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
    for (int64_t i = 0; i < count; ++i)
        if (index[i] >= 0) g.order[static_cast<size_t>(next[static_cast<size_t>(index[i])]++)] = i;
    return g;
}

// The per-row kernel over every batch row: rows grouped by adapter, parallel over token rows
// with LibTorch's intra-op threads.
void per_row(const at::Tensor& xs, const at::Tensor& as, const at::Tensor& bs, const at::Tensor& ss, const int64_t* index,
             int64_t count, int64_t seq, at::Tensor& result) {
    const int64_t n = as.size(0), rank = as.size(1), outf = bs.size(2), in = xs.size(-1);
    const at::ScalarType type = as.scalar_type();
    // Batch rows grouped by adapter; rows without one get zeros.
    const std::vector<int64_t> order = by_adapter(index, count, n).order;
    for (int64_t i = 0; i < count; ++i)
        if (index[i] < 0) result.select(0, i).zero_();
    // Work split by token rows, not by adapter, so one adapter's batch still uses every thread.
    const int64_t grain = std::max<int64_t>(1, 256 / std::max<int64_t>(1, seq));
    const int64_t work = static_cast<int64_t>(order.size());
    if (type == at::kFloat) {
        const float *xp = xs.data_ptr<float>(), *ap = as.data_ptr<float>(), *bp = bs.data_ptr<float>(), *sp = ss.data_ptr<float>();
        float* rp = result.data_ptr<float>();
        at::parallel_for(0, work, grain, [&](int64_t begin, int64_t end) {
            mixed_rows_f32(begin, end, order.data(), index, seq, xp, ap, bp, sp, rp, in, rank, outf);
        });
    } else {
        const double *xp = xs.data_ptr<double>(), *ap = as.data_ptr<double>(), *bp = bs.data_ptr<double>(), *sp = ss.data_ptr<double>();
        double* rp = result.data_ptr<double>();
        at::parallel_for(0, work, grain, [&](int64_t begin, int64_t end) {
            mixed_rows_f64(begin, end, order.data(), index, seq, xp, ap, bp, sp, rp, in, rank, outf);
        });
    }
}

// Token rows per work unit of the grouped kernel: enough for the register-blocked products to
// run at speed, few enough that one adapter's batch spreads over every thread.
constexpr int64_t kUnitTokens = 64;

// The float32 update by adapter groups (AVX2+FMA): batch rows ordered by adapter, stably, so
// one adapter's factors serve all of its rows from cache wherever they are in the batch;
// each group's token rows cut into units of at most kUnitTokens, parallel over units. Per
// unit, h = x·Aᵀ (xwt: A (R, in) is the weight), h *= s, out = h·Bᵀ (gw: Bᵀ (R, out)), each
// output row written once. A unit whose token rows are not one contiguous block of x (rows
// of one adapter apart in the batch) is packed into a buffer first and its output scattered.
void grouped_f32(const at::Tensor& xs, const at::Tensor& as, const at::Tensor& bs, const at::Tensor& ss,
                 const int64_t* index, int64_t count, int64_t seq, at::Tensor& result) {
    const int64_t n = as.size(0), rank = as.size(1), outf = bs.size(2), in = xs.size(-1);
    const float *xp = xs.data_ptr<float>(), *ap = as.data_ptr<float>(), *bp = bs.data_ptr<float>(), *sp = ss.data_ptr<float>();
    float* rp = result.data_ptr<float>();
    // Batch rows grouped by adapter; rows without one get zeros.
    const Groups groups = by_adapter(index, count, n);
    const std::vector<int64_t>& start = groups.start;
    const std::vector<int64_t>& order = groups.order;
    for (int64_t i = 0; i < count; ++i)
        if (index[i] < 0) std::fill(rp + i * seq * outf, rp + (i + 1) * seq * outf, 0.0f);
    // Units: (adapter, first token position p0 and end p1 within the adapter's group).
    struct Unit { int64_t k, p0, p1; };
    std::vector<Unit> units;
    for (int64_t k = 0; k < n; ++k) {
        const int64_t tokens = (start[static_cast<size_t>(k + 1)] - start[static_cast<size_t>(k)]) * seq;
        if (tokens == 0) continue;
        const int64_t parts = (tokens + kUnitTokens - 1) / kUnitTokens;
        for (int64_t j = 0; j < parts; ++j) units.push_back({k, tokens * j / parts, tokens * (j + 1) / parts});
    }
    at::parallel_for(0, static_cast<int64_t>(units.size()), 1, [&](int64_t begin, int64_t end) {
        std::vector<float> xb, yb, h(static_cast<size_t>(kUnitTokens * rank));
        for (int64_t u = begin; u < end; ++u) {
            const Unit& w = units[static_cast<size_t>(u)];
            const int64_t* rows = order.data() + start[static_cast<size_t>(w.k)];
            // The token row of x at position p of the group (increasing in p: the sort is stable).
            auto token = [&](int64_t p) { return rows[p / seq] * seq + p % seq; };
            const int64_t m = w.p1 - w.p0, first = token(w.p0);
            const bool contiguous = token(w.p1 - 1) - first == m - 1;
            const float* xu = xp + first * in;
            if (!contiguous) {
                xb.resize(static_cast<size_t>(kUnitTokens * in));
                yb.resize(static_cast<size_t>(kUnitTokens * outf));
                for (int64_t p = w.p0; p < w.p1; ++p)
                    std::copy_n(xp + token(p) * in, in, xb.data() + (p - w.p0) * in);
                xu = xb.data();
            }
            lt::gemm::xwt(xu, m, in, ap + w.k * rank * in, rank, nullptr, h.data(), 0, rank);
            const float s = sp[w.k];
            for (int64_t j = 0; j < m * rank; ++j) h[static_cast<size_t>(j)] *= s;
            float* yu = contiguous ? rp + first * outf : yb.data();
            lt::gemm::gw(h.data(), m, rank, bp + w.k * rank * outf, outf, yu, 0, outf);
            if (!contiguous)
                for (int64_t p = w.p0; p < w.p1; ++p)
                    std::copy_n(yb.data() + (p - w.p0) * outf, outf, rp + token(p) * outf);
        }
    });
}
}  // namespace

extern "C" {

lt_status lt_lora_mixed(const lt_tensor* x, const lt_tensor* a, const lt_tensor* bt, const lt_tensor* scale,
                        const int64_t* index, int64_t count, lt_tensor** out) {
    LT_BODY(
        lt::need(out, "out");
        const at::Tensor xs = T(x, "x")->contiguous();
        const at::Tensor as = T(a, "a")->contiguous();
        const at::Tensor bs = T(bt, "bt")->contiguous();
        const at::Tensor ss = T(scale, "scale")->contiguous();
        const at::ScalarType type = as.scalar_type();
        require((type == at::kFloat || type == at::kDouble) && xs.scalar_type() == type && bs.scalar_type() == type &&
                    ss.scalar_type() == type,
                "lora_mixed needs x, a, bt and scale all float32 or all float64");
        require(xs.device().is_cpu() && as.device().is_cpu() && bs.device().is_cpu() && ss.device().is_cpu(),
                "lora_mixed runs on the CPU");
        require(xs.dim() >= 2 && as.dim() == 3 && bs.dim() == 3 && ss.dim() == 1,
                "lora_mixed: x (N, ..., in), a (n,R,in), bt (n,R,out), scale (n)");
        const int64_t n_rows = xs.size(0), in = xs.size(-1);
        const int64_t n = as.size(0), rank = as.size(1), outf = bs.size(2);
        require(in > 0 && as.size(2) == in, "lora_mixed: a's last dimension must be x's, and not 0");
        require(bs.size(0) == n && bs.size(1) == rank && ss.size(0) == n, "lora_mixed: a, b and scale disagree on adapters or rank");
        require(count == n_rows, "lora_mixed: " + std::to_string(count) + " indices for " + std::to_string(n_rows) + " rows");
        require(count == 0 || index != nullptr, "lora_mixed: index is NULL");
        for (int64_t i = 0; i < count; ++i)
            if (index[i] >= n) throw std::out_of_range("lora_mixed: index " + std::to_string(index[i]) + " >= " + std::to_string(n) + " adapters");
        // Every batch row i owns `seq` contiguous token rows of x (1 for a 2-d x).
        const int64_t seq = n_rows == 0 ? 0 : xs.numel() / (n_rows * in);
        std::vector<int64_t> sizes = xs.sizes().vec();
        sizes.back() = outf;
        at::Tensor result = at::empty(sizes, xs.options());
        if (count > 0 && type == at::kFloat && lt::gemm::available()) {
            grouped_f32(xs, as, bs, ss, index, count, seq, result);
        } else if (count > 0 && mean_run_tokens(index, count, seq) >= kBlasTokens) {
            blas_runs(xs.view({count * seq, in}), as, bs, ss, index, count, seq, result.view({count * seq, outf}));
        } else {
            per_row(xs, as, bs, ss, index, count, seq, result);
        }
        lt::put(out, std::move(result));
    );
}

}  // extern "C"
