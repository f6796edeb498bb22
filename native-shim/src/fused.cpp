// Fused kernels for hot paths that would otherwise take many downcalls and dispatches.
#include <ATen/Parallel.h>

#include <string>
#include <vector>

#include "internal.h"

using lt::T;

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

// A dot product with 32 independent partial sums (four 8-wide vectors), so the compiler
// vectorises it without reassociating additions on its own and the FMA latency is hidden.
__attribute__((always_inline)) inline float dot(const float* a, const float* b, int64_t n) {
    float acc[32] = {};
    int64_t j = 0;
    for (; j + 32 <= n; j += 32)
        for (int l = 0; l < 32; ++l) acc[l] += a[j + l] * b[j + l];
    for (int l = 8; l < 32; ++l) acc[l % 8] += acc[l];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < n; ++j) sum += a[j] * b[j];
    return sum;
}

// Adapters begin..end of the mixed-batch LoRA update; rows[offsets[k]..offsets[k+1]) use
// adapter k. Each adapter's factors are read once for all of its rows, which keeps them in
// cache. Compiled twice (AVX2+FMA and the x86-64 baseline) and picked at load time by the
// CPU (x86-64-v3: AVX2 and FMA), so the packaged library runs everywhere and uses 8-wide FMA
// where it can.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void mixed_adapters(int64_t begin, int64_t end, const int64_t* rows, const int64_t* offsets, const float* xp,
                    const float* ap, const float* bp, const float* sp, float* rp, int64_t in, int64_t rank, int64_t outf) {
    std::vector<float> down;
    for (int64_t k = begin; k < end; ++k) {
        const int64_t first = offsets[k], count = offsets[k + 1] - offsets[k];
        if (count == 0) continue;
        down.assign(static_cast<size_t>(count * rank), 0.f);
        const float* ak = ap + k * rank * in;
        for (int64_t r = 0; r < rank; ++r) {
            const float* arow = ak + r * in;
            for (int64_t j = 0; j < count; ++j)
                down[static_cast<size_t>(j * rank + r)] = dot(arow, xp + rows[first + j] * in, in) * sp[k];
        }
        // Up-projection as axpys over the output (B is stored transposed, (R, out)).
        const float* bk = bp + k * rank * outf;
        for (int64_t j = 0; j < count; ++j) {
            float* ri = rp + rows[first + j] * outf;
            for (int64_t r = 0; r < rank; ++r) {
                const float d = down[static_cast<size_t>(j * rank + r)];
                const float* brow = bk + r * outf;
                for (int64_t o = 0; o < outf; ++o) ri[o] += d * brow[o];
            }
        }
    }
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
        require(xs.scalar_type() == at::kFloat && as.scalar_type() == at::kFloat && bs.scalar_type() == at::kFloat &&
                    ss.scalar_type() == at::kFloat,
                "lora_mixed needs float32 tensors");
        require(xs.device().is_cpu() && as.device().is_cpu() && bs.device().is_cpu(), "lora_mixed runs on the CPU");
        require(xs.dim() == 2 && as.dim() == 3 && bs.dim() == 3 && ss.dim() == 1, "lora_mixed: x (N,in), a (n,R,in), bt (n,R,out), scale (n)");
        const int64_t n_rows = xs.size(0), in = xs.size(1);
        const int64_t n = as.size(0), rank = as.size(1), outf = bs.size(2);
        require(as.size(2) == in, "lora_mixed: a's last dimension must be x's");
        require(bs.size(0) == n && bs.size(1) == rank && ss.size(0) == n, "lora_mixed: a, b and scale disagree on adapters or rank");
        require(count == n_rows, "lora_mixed: " + std::to_string(count) + " indices for " + std::to_string(n_rows) + " rows");
        require(count == 0 || index != nullptr, "lora_mixed: index is NULL");
        for (int64_t i = 0; i < count; ++i)
            if (index[i] >= n) throw std::out_of_range("lora_mixed: index " + std::to_string(index[i]) + " >= " + std::to_string(n) + " adapters");
        at::Tensor result = at::zeros({n_rows, outf}, xs.options());
        const float* xp = xs.data_ptr<float>();
        const float* ap = as.data_ptr<float>();
        const float* bp = bs.data_ptr<float>();
        const float* sp = ss.data_ptr<float>();
        float* rp = result.data_ptr<float>();
        // Rows grouped by adapter (a counting sort), so each adapter's factors are read once.
        std::vector<int64_t> offsets(static_cast<size_t>(n + 1), 0);
        for (int64_t i = 0; i < count; ++i)
            if (index[i] >= 0) offsets[static_cast<size_t>(index[i] + 1)]++;
        for (int64_t k = 0; k < n; ++k) offsets[static_cast<size_t>(k + 1)] += offsets[static_cast<size_t>(k)];
        std::vector<int64_t> rows(static_cast<size_t>(offsets[static_cast<size_t>(n)]));
        std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
        for (int64_t i = 0; i < count; ++i)
            if (index[i] >= 0) rows[static_cast<size_t>(fill[static_cast<size_t>(index[i])]++)] = i;
        at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
            mixed_adapters(begin, end, rows.data(), offsets.data(), xp, ap, bp, sp, rp, in, rank, outf);
        });
        lt::put(out, std::move(result));
    );
}

}  // extern "C"
