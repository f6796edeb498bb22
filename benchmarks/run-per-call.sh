#!/usr/bin/env bash
# The per-call cost of lora4j against the same loop in C++ straight on LibTorch:
# add of two 1-element float tensors, result freed, one intra-op thread on both sides.
# Runs C++, JMH, C++ again (so machine drift shows), and prints the ratio of medians; then
# PerCallParts: the API against the raw downcalls under it, alternating in one JVM; and
# PerCallInterleaved: the API against the C++ loop in one process, default and pre-touched heap.
#
#   benchmarks/run-per-call.sh [extra JMH args, e.g. -f 1 -wi 3 -i 3]
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=benchmarks/results; mkdir -p "$out"
native=build/native/lora4j_bench_native

say "C++ (LibTorch direct), 5 x 2 s"
c1=$("$native" add 2 5 1 | tee /dev/stderr | awk '/^median:/ {print $2}')
say "lora4j (JMH)"
java --enable-native-access=ALL-UNNAMED -jar benchmarks/target/benchmarks.jar PerCallBenchmark \
  -rf text -rff "$out/per-call-jmh.txt" "$@" | tee "$out/per-call-jmh.log" | grep -E "^(Benchmark|PerCall)" >&2 || true
say "C++ again"
c2=$("$native" add 2 5 1 | tee /dev/stderr | awk '/^median:/ {print $2}')

awk -v c1="$c1" -v c2="$c2" '
  /PerCallBenchmark\.add / { add = $(NF-3); adderr = $(NF-1) }
  /PerCallBenchmark\.addInScope/ { scoped = $(NF-3); scopederr = $(NF-1) }
  END {
    cpp = (c1 + c2) / 2
    printf "\n| work | ns/op | ratio to C++ |\n|---|---:|---:|\n"
    printf "| C++ `at::add` (mean of two runs: %.1f, %.1f) | %.1f | 1.00 |\n", c1, c2, cpp
    printf "| lora4j `a.add(b)` + close | %.1f ± %.1f | %.3f |\n", add, adderr, add / cpp
    printf "| lora4j `a.add(b)` in a TensorScope | %.1f ± %.1f | %.3f |\n", scoped, scopederr, scoped / cpp
  }' "$out/per-call-jmh.txt" | tee "$out/per-call.md"

say "lora4j: the API against the raw downcalls under it, alternating in one JVM (PerCallParts)"
{
  printf '\nThe API against the raw downcalls under it, in one JVM, loops alternating (`PerCallParts`):\n\n```\n'
  java --enable-native-access=ALL-UNNAMED -cp benchmarks/target/benchmarks.jar dev.lora4j.benchmarks.PerCallParts
  printf '```\n'
} | tee -a "$out/per-call.md"

say "lora4j against C++ in one process, blocks interleaved (PerCallInterleaved): the JVM's default heap, then a pre-touched one"
loops=-Dlora4j.benchLoops=build/native/liblora4j_bench_loops.so
{
  printf '\nlora4j against the same loop in C++, interleaved in one process (`PerCallInterleaved`), first with the JVM'"'"'s default heap, then with `-Xms512m -Xmx512m -XX:+AlwaysPreTouch` (what run-all.sh gives the JVM peers):\n\n```\n'
  java --enable-native-access=ALL-UNNAMED "$loops" -cp benchmarks/target/benchmarks.jar dev.lora4j.benchmarks.PerCallInterleaved | grep -v '^RESULT'
  java --enable-native-access=ALL-UNNAMED "$loops" -Xms512m -Xmx512m -XX:+AlwaysPreTouch \
    -cp benchmarks/target/benchmarks.jar dev.lora4j.benchmarks.PerCallInterleaved | grep -v '^RESULT'
  printf '```\n'
} | tee -a "$out/per-call.md"
