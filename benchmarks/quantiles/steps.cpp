// bench_native's own works (benchmarks/native/bench_native.cpp, included unchanged) timed call by
// call, for quantiles: `steps <work> <threads> <calls>` prints min / q10 / q25 / median in µs per
// call; `steps add 1 <blocks>` times blocks of 1000 calls instead and prints ns per call.
#define main bench_main
#include "../native/bench_native.cpp"
#undef main

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s <work> <threads> <calls or blocks>\n", argv[0]);
        return 2;
    }
    const std::string which = argv[1];
    const int threads = std::atoi(argv[2]), n = std::atoi(argv[3]);
    at::set_num_threads(threads);
    Work w = make(which);
    const bool blocks = which == "add";
    const int per = blocks ? 1000 : 1;
    for (int i = 0; i < (blocks ? 200000 : std::max(1, n / 5)); ++i) w.op();
    std::vector<double> t;
    for (int b = 0; b < n; ++b) {
        const auto t0 = clock_type::now();
        for (int i = 0; i < per; ++i) w.op();
        t.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / per / (blocks ? 1 : 1000));
    }
    std::sort(t.begin(), t.end());
    std::printf("c++ %s t%d: min %.1f q10 %.1f q25 %.1f med %.1f %s\n", which.c_str(), threads, t[0], t[n / 10], t[n / 4],
                t[n / 2], blocks ? "ns" : "us");
    return 0;
}
