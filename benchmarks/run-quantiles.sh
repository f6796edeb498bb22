#!/usr/bin/env bash
# Quantiles of single calls instead of means, for a machine shared with other work: a call
# shorter than a scheduler slice often runs undisturbed, so the minimum and the low quantiles
# of many timed calls approach the quiet machine's time while means and medians follow the
# load. The same works as run-all.sh: C++ (bench_native.cpp's code, included unchanged) and
# lora4j (Lora4jWork's states and methods), alternating, each printed as min / q10 / q25 / median.
#
#   benchmarks/run-quantiles.sh [threads] [rounds]      # default 1 thread, 2 rounds
#   also: per call (a), the PerCallBenchmark steps in interleaved blocks of 1000 calls
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
t=${1:-1}; rounds=${2:-2}
jar=benchmarks/target/benchmarks.jar
[ -f "$jar" ] || die "build first (scripts/setup.sh)"
steps=build/native/lora4j_bench_steps
if [ ! -x "$steps" ] || [ benchmarks/quantiles/steps.cpp -nt "$steps" ] || [ benchmarks/native/bench_native.cpp -nt "$steps" ]; then
  say "compiling $steps"
  g++ -O3 -std=gnu++17 -I/usr/include/torch/csrc/api/include benchmarks/quantiles/steps.cpp -o "$steps" -ltorch -ltorch_cpu -lc10 -lz
fi
export OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864
j() { java --enable-native-access=ALL-UNNAMED -cp "$jar" "benchmarks/quantiles/$1" "${@:2}"; }
for r in $(seq "$rounds"); do
  say "round $r, $t thread(s), $(uptime | sed 's/.*load/load/')"
  "$steps" lora_step "$t" 3000; j JStep.java lora_step "$t" 3000
  "$steps" mlp_lora_step "$t" 800; j JStep.java mlp_lora_step "$t" 800
  if [ "$t" = 1 ]; then "$steps" add 1 3000; j JAdd.java 3000; j PerCallBlocks.java 2000; fi
done
