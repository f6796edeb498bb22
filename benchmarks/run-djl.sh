#!/usr/bin/env bash
# lora4j against DJL 0.22.0 (its PyTorch engine) on the very same LibTorch, Debian's 1.13.1:
#   (a) add of two 1-element float tensors, result closed at once
#   (b) linear forward x[10,784]·W[1000,784]ᵀ + b, result freed
# one intra-op thread on both sides, in one JMH run. Prints the medians of the measurement
# iterations (all forks) and the lora4j/DJL ratios as a Markdown table.
#
#   benchmarks/run-djl.sh [extra JMH args, e.g. -f 1 -wi 2 -i 3]
#
# DJL runs offline: PYTORCH_LIBRARY_PATH points it at a folder of symlinks to Debian's
# libtorch.so, libtorch_cpu.so and libc10.so, so it downloads nothing and loads no LibTorch of
# its own (the benchmarks print the libtorch files mapped into the JVM to show it).
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"

. benchmarks/djl-env.sh
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

out=benchmarks/results; mkdir -p "$out"
say "lora4j and DJL (JMH), LibTorch from $PYTORCH_LIBRARY_PATH"
rm -f "$out/djl-jmh.json"
set +e
java --enable-native-access=ALL-UNNAMED -jar benchmarks/target/benchmarks.jar \
  'PerCallBenchmark\.add$|LinearBenchmark|\.djl\.' \
  -rf json -rff "$out/djl-jmh.json" "$@" 2> >(grep -v '^SLF4J' >&2) | tee "$out/djl-jmh.log" \
  | grep -E '\[djl\]|^Benchmark|^(Linear|PerCall|djl\.)|^# (Benchmark:|Run progress)' \
  | sed 's/^# Warmup Iteration.*: \[djl\]/[djl]/' >&2
jmh=${PIPESTATUS[0]}
set -e
[ "$jmh" -eq 0 ] && [ -s "$out/djl-jmh.json" ] || die "JMH failed (exit $jmh), see $out/djl-jmh.log"

if grep -q '\[djl\] mapped .*libtorch_cpu' "$out/djl-jmh.log"; then
  say "DJL loaded: $(grep -o '\[djl\] mapped .*' "$out/djl-jmh.log" | sed 's/^\[djl\] mapped //' | sort -u | tr '\n' ' ')"
else
  say "warning: no '[djl] mapped ... libtorch_cpu' line in $out/djl-jmh.log"
fi

# JMH's JSON is one key per line; the first "50.0" after a "benchmark" is its primary median.
awk '
  /"benchmark" *:/ { split($0, q, "\""); name = q[4]; sub(/^dev\.lora4j\.benchmarks\./, "", name); med = ""; next }
  function value(line) { sub(/^[^:]*: */, "", line); gsub(/[",[:space:]]/, "", line); return line }
  /"score" *:/ && name != "" && !(name in mean) { mean[name] = value($0) }
  /"scoreError" *:/ && name != "" && !(name in err) { err[name] = value($0) }
  /"50\.0" *:/ && name != "" && !(name in median) { median[name] = value($0) }
  function cell(n) { return (n in median) ? sprintf("%.1f (mean %.1f ± %s)", median[n], mean[n], err[n] == "NaN" || err[n] == "" ? "?" : sprintf("%.1f", err[n])) : "n/a" }
  function ratio(l, d) { return (l in median) && (d in median) && median[d] > 0 ? sprintf("%.3f", median[l] / median[d]) : "n/a" }
  function row(work, l, d) { printf "| %s | %s | %s | %s |\n", work, cell(l), cell(d), ratio(l, d) }
  END {
    printf "\n| work (ns/op, median of iterations) | lora4j | DJL 0.22.0 | lora4j / DJL |\n|---|---:|---:|---:|\n"
    row("add, 1-element float, result closed", "PerCallBenchmark.add", "djl.DjlPerCallBenchmark.add")
    row("linear 10×784 → 1000 (`F.linear` / `Linear.linear`)", "LinearBenchmark.linear", "djl.DjlLinearBenchmark.linear")
    row("linear, DJL as `x.matMul(W.transpose()).add(b)`", "LinearBenchmark.linear", "djl.DjlLinearBenchmark.matMul")
  }' "$out/djl-jmh.json" | tee "$out/djl.md"
