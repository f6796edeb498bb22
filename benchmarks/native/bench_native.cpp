// The C++ side of lora4j's per-call benchmarks: the same work as the JMH benchmarks,
// straight on LibTorch, timed the way JMH's AverageTime mode reports it (ns per operation).
//
// usage: lora4j_bench_native <benchmark> [seconds-per-iteration] [iterations] [threads]
//   benchmark: add   (1-element float tensors, result freed)
// Prints one line per measured iteration ("iteration N: X ns/op") and a final
// "median: X ns/op" line that the comparison script reads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

template <class Op>
double ns_per_op(Op&& op, double seconds) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(seconds);
    long long ops = 0;
    const auto start = clock::now();
    auto now = start;
    do {
        for (int i = 0; i < 1000; ++i) op();
        ops += 1000;
        now = clock::now();
    } while (now < deadline);
    return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(ops);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string which = argc > 1 ? argv[1] : "add";
    const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
    const int iterations = argc > 3 ? std::atoi(argv[3]) : 5;
    const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
    at::set_num_threads(threads);

    if (which != "add") {
        std::fprintf(stderr, "unknown benchmark '%s' (known: add)\n", which.c_str());
        return 2;
    }
    at::Tensor a = at::ones({1});
    at::Tensor b = at::ones({1});
    auto op = [&] {
        at::Tensor c = at::add(a, b);  // freed at the end of the statement's scope
        (void)c;
    };

    ns_per_op(op, seconds);  // warm-up
    std::vector<double> results;
    for (int i = 0; i < iterations; ++i) {
        results.push_back(ns_per_op(op, seconds));
        std::printf("iteration %d: %.1f ns/op\n", i + 1, results.back());
    }
    std::sort(results.begin(), results.end());
    std::printf("median: %.1f ns/op\n", results[results.size() / 2]);
    return 0;
}
