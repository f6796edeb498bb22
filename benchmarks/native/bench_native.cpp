// The C++ side of lora4j's benchmarks: the same work as the JMH benchmarks (Lora4jWork,
// djl.DjlWork) and benchmarks/python/bench.py, straight on LibTorch — the limit a JVM binding
// can approach. Timed the way JMH's AverageTime mode reports it (ns per operation): a warm-up
// iteration, then repeated timed iterations; the median is what the comparison reads.
//
// usage: lora4j_bench_native <work|all> [seconds-per-iteration] [iterations] [threads]
//   work: add | linear | lora_step | mlp_step | mlp_lora_step | infer_base | infer_merged | train_loop
//     add            1-element float tensors, result freed
//     linear         x[10,784]·W[1000,784]ᵀ + b, result freed
//     lora_step      LoRA linear 784→1000, r=4, α=8, frozen base: forward, mean of squares,
//                    backward, torch::optim::SGD (lr 1e-3) on A and B, gradients dropped
//     mlp_step       MLP 784→1000→2000→10 (ReLU), batch 10, cross-entropy, backward,
//                    torch::optim::Adam (lr 1e-3) over all parameters
//     mlp_lora_step  the same MLP, rank-1 LoRA (α 1) on its three layers, base frozen,
//                    torch::optim::Adam over the six factors
//     infer_base     the MLP's forward without grad
//     infer_merged   the same with W' = W + s·B·A merged in
//     train_loop     the demo's pre-training loop, one step per call: Fashion-MNIST read from
//                    Debian's IDX files (zlib) once, first 10,000 images as float32/255, a new
//                    randperm each epoch, per batch of 10 index_select of images and labels,
//                    then the mlp_step work on them and the loss read back (loss.item())
//                    (LORA4J_FASHION_MNIST=DIR overrides /usr/share/datasets/fashion-mnist)
// Prints "iteration N: X ns/op" lines, a "median: X ns/op" line per work, and one
// "RESULT <work> <threads> <ns/op of every iteration>" line that run-all.sh reads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int64_t kBatch = 10, kIn = 784, kH1 = 1000, kH2 = 2000, kClasses = 10;
constexpr int64_t kTrainImages = 10000;  // (g): the demo's --limit 10000

// Runs op in batches of `batch` calls until `seconds` have passed; ns per call.
double ns_per_op(const std::function<void()>& op, double seconds, long long batch) {
    const auto deadline = clock_type::now() + std::chrono::duration<double>(seconds);
    long long ops = 0;
    const auto start = clock_type::now();
    auto now = start;
    do {
        for (long long i = 0; i < batch; ++i) op();
        ops += batch;
        now = clock_type::now();
    } while (now < deadline);
    return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(ops);
}

// PyTorch's default Linear init: U(-1/√in, 1/√in) for weight and bias.
std::vector<at::Tensor> linear_params(int64_t in, int64_t out) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    return {at::empty({out, in}).uniform_(-bound, bound), at::empty({out}).uniform_(-bound, bound)};
}

std::vector<at::Tensor> labels() {
    at::Tensor y0 = at::empty({kBatch}, at::kLong), y1 = at::empty({kBatch}, at::kLong);
    for (int64_t i = 0; i < kBatch; ++i) {
        y0[i] = i % kClasses;
        y1[i] = (i + 1) % kClasses;
    }
    return {y0, y1};
}

void drop_grads(std::vector<at::Tensor>& ps) {
    for (auto& p : ps) p.mutable_grad().reset();
}

// PEFT's LoRA linear: linear(x, W, b) + linear(linear(x, A), B)·s.
at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& a,
                       const at::Tensor& bb, double s) {
    return at::linear(x, w, b) + at::linear(at::linear(x, a), bb) * s;
}

// An IDX file of unsigned bytes (gzipped or not: zlib reads both), shaped as its header says.
at::Tensor read_idx(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (f == nullptr) throw std::runtime_error(path + ": cannot open");
    std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(f, gzclose);
    unsigned char head[4];
    if (gzread(f, head, 4) != 4 || head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] == 0)
        throw std::runtime_error(path + ": not an IDX file of unsigned bytes");
    std::vector<int64_t> dims(head[3]);
    int64_t count = 1;
    for (auto& d : dims) {
        unsigned char b[4];
        if (gzread(f, b, 4) != 4) throw std::runtime_error(path + ": truncated header");
        d = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
        count *= d;
    }
    at::Tensor t = at::empty(dims, at::kByte);
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    for (int64_t done = 0; done < count;) {
        const int n = gzread(f, p + done, static_cast<unsigned>(std::min<int64_t>(count - done, 1 << 20)));
        if (n <= 0) throw std::runtime_error(path + ": truncated data");
        done += n;
    }
    return t;
}

std::string fashion_mnist_dir() {
    const char* d = std::getenv("LORA4J_FASHION_MNIST");
    return d != nullptr ? d : "/usr/share/datasets/fashion-mnist";
}

struct Work {
    std::function<void()> op;
    std::function<void()> report;  // optional, after timing
};

Work make(const std::string& which) {
    at::manual_seed(0);
    if (which == "add") {
        auto a = at::ones({1}), b = at::ones({1});
        return {[a, b] { at::Tensor c = at::add(a, b); }};
    }
    if (which == "linear") {
        auto x = at::randn({kBatch, kIn}), w = at::randn({kH1, kIn}), b = at::randn({kH1});
        return {[x, w, b] { at::Tensor y = at::linear(x, w, b); }};
    }
    if (which == "lora_step") {
        auto base = linear_params(kIn, kH1);
        const double bound = 1.0 / std::sqrt(static_cast<double>(kIn));
        auto a = at::empty({4, kIn}).uniform_(-bound, bound).set_requires_grad(true);
        auto bb = at::zeros({kH1, 4}).set_requires_grad(true);
        auto x = at::randn({kBatch, kIn});
        auto params = std::make_shared<std::vector<at::Tensor>>(std::vector<at::Tensor>{a, bb});
        auto sgd = std::make_shared<torch::optim::SGD>(*params, torch::optim::SGDOptions(1e-3));
        auto last = std::make_shared<double>(0);
        return {[=] {
                    at::Tensor loss = lora_linear(x, base[0], base[1], (*params)[0], (*params)[1], 8.0 / 4.0).pow(2).mean();
                    drop_grads(*params);
                    loss.backward();
                    sgd->step();
                    *last = loss.item<double>();
                },
                [last] { std::printf("[c++] lora_step last loss %g\n", *last); }};
    }
    if (which == "mlp_step" || which == "mlp_lora_step") {
        const bool lora = which == "mlp_lora_step";
        const int64_t sizes[] = {kIn, kH1, kH2, kClasses};
        auto base = std::make_shared<std::vector<at::Tensor>>();
        auto trained = std::make_shared<std::vector<at::Tensor>>();
        for (int l = 0; l < 3; ++l) {
            for (auto& p : linear_params(sizes[l], sizes[l + 1])) {
                if (!lora) {
                    p.set_requires_grad(true);
                    trained->push_back(p);
                }
                base->push_back(p);
            }
            if (lora) {
                const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[l]));
                trained->push_back(at::empty({1, sizes[l]}).uniform_(-bound, bound).set_requires_grad(true));
                trained->push_back(at::zeros({sizes[l + 1], 1}).set_requires_grad(true));
            }
        }
        auto adam = std::make_shared<torch::optim::Adam>(*trained, torch::optim::AdamOptions(1e-3));
        auto x = at::randn({kBatch, kIn});
        auto y = labels();
        auto step = std::make_shared<long long>(0);
        auto last = std::make_shared<double>(0);
        return {[=] {
                    const auto& b = *base;
                    const auto& t = *trained;
                    at::Tensor h = x;
                    for (int l = 0; l < 3; ++l) {
                        h = lora ? lora_linear(h, b[2 * l], b[2 * l + 1], t[2 * l], t[2 * l + 1], 1.0)
                                 : at::linear(h, b[2 * l], b[2 * l + 1]);
                        if (l < 2) h = at::relu(h);
                    }
                    at::Tensor loss = at::cross_entropy_loss(h, y[(*step)++ & 1]);
                    drop_grads(*trained);
                    loss.backward();
                    adam->step();
                    *last = loss.item<double>();
                },
                [which, last] { std::printf("[c++] %s last loss %g\n", which.c_str(), *last); }};
    }
    if (which == "infer_base" || which == "infer_merged") {
        const int64_t sizes[] = {kIn, kH1, kH2, kClasses};
        std::vector<at::Tensor> p;
        for (int l = 0; l < 3; ++l) {
            auto wb = linear_params(sizes[l], sizes[l + 1]);
            if (which == "infer_merged") {
                const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[l]));
                auto a = at::empty({1, sizes[l]}).uniform_(-bound, bound);
                auto bb = at::randn({sizes[l + 1], 1});
                wb[0] = wb[0] + at::mm(bb, a);  // W + s·B·A, s = 1
            }
            p.insert(p.end(), wb.begin(), wb.end());
        }
        auto x = at::randn({kBatch, kIn});
        return {[p, x] {
            c10::NoGradGuard no_grad;
            at::Tensor h = at::relu(at::linear(x, p[0], p[1]));
            h = at::relu(at::linear(h, p[2], p[3]));
            at::Tensor y = at::linear(h, p[4], p[5]);
        }};
    }
    if (which == "train_loop") {
        // Loaded once, as the demo does: all images to float32 / 255, then the first 10,000.
        const std::string dir = fashion_mnist_dir();
        at::Tensor images = read_idx(dir + "/train-images-idx3-ubyte.gz");
        at::Tensor all = images.reshape({images.size(0), -1}).to(at::kFloat).div(255.0);
        auto x = std::make_shared<at::Tensor>(all.narrow(0, 0, kTrainImages).clone());
        auto y = std::make_shared<at::Tensor>(read_idx(dir + "/train-labels-idx1-ubyte.gz").narrow(0, 0, kTrainImages).to(at::kLong));
        const int64_t sizes[] = {kIn, kH1, kH2, kClasses};
        auto params = std::make_shared<std::vector<at::Tensor>>();
        for (int l = 0; l < 3; ++l) {
            for (auto& p : linear_params(sizes[l], sizes[l + 1])) params->push_back(p.set_requires_grad(true));
        }
        auto adam = std::make_shared<torch::optim::Adam>(*params, torch::optim::AdamOptions(1e-3));
        auto perm = std::make_shared<at::Tensor>();
        auto next = std::make_shared<int64_t>(kTrainImages);  // position in the epoch's permutation
        auto last = std::make_shared<double>(0);
        return {[=] {
                    if (*next + kBatch > kTrainImages) {  // a new epoch (drop_last)
                        *perm = at::randperm(kTrainImages, at::kLong);
                        *next = 0;
                    }
                    at::Tensor idx = perm->narrow(0, *next, kBatch);
                    *next += kBatch;
                    at::Tensor xb = x->index_select(0, idx), yb = y->index_select(0, idx);
                    const auto& p = *params;
                    at::Tensor h = at::relu(at::linear(xb, p[0], p[1]));
                    h = at::relu(at::linear(h, p[2], p[3]));
                    at::Tensor loss = at::cross_entropy_loss(at::linear(h, p[4], p[5]), yb);
                    drop_grads(*params);
                    loss.backward();
                    adam->step();
                    *last = loss.item<double>();
                },
                [last] { std::printf("[c++] train_loop last loss %g\n", *last); }};
    }
    std::fprintf(stderr, "unknown work '%s'\n", which.c_str());
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string which = argc > 1 ? argv[1] : "add";
    const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
    const int iterations = argc > 3 ? std::atoi(argv[3]) : 5;
    const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
    at::set_num_threads(threads);

    std::vector<std::string> works;
    if (which == "all") {
        works = {"add", "linear", "lora_step", "mlp_step", "mlp_lora_step", "infer_base", "infer_merged", "train_loop"};
    } else {
        works = {which};
    }
    for (const auto& w : works) {
        Work work = make(w);
        // Batch size: about 1 ms of work per clock read, found from a short first run.
        double estimate = ns_per_op(work.op, 0.05, 1);
        long long batch = std::max(1LL, static_cast<long long>(1e6 / std::max(estimate, 1.0)));
        ns_per_op(work.op, seconds, batch);  // warm-up iteration
        std::vector<double> results;
        for (int i = 0; i < iterations; ++i) {
            results.push_back(ns_per_op(work.op, seconds, batch));
            std::printf("%s iteration %d: %.1f ns/op\n", w.c_str(), i + 1, results.back());
        }
        if (work.report) work.report();
        std::printf("RESULT %s %d", w.c_str(), threads);
        for (double r : results) std::printf(" %.1f", r);
        std::printf("\n");
        std::vector<double> sorted = results;
        std::sort(sorted.begin(), sorted.end());
        std::printf("median: %.1f ns/op\n", sorted[sorted.size() / 2]);
        std::fflush(stdout);
    }
    return 0;
}
