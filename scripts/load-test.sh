#!/usr/bin/env bash
# Load test of the inference service on loopback with wrk (Debian's package, installed if missing):
# starts the service (as scripts/serve.sh does) on 127.0.0.1, warms it up, then runs wrk at 1, 4 and
# 16 connections (16 twice) for a bounded time each, recording throughput, p50/p99 latency and the JVM's resident
# memory (VmRSS of /proc/PID/status) before and after; stops the service with SIGTERM (graceful) and
# writes examples/results/load-test.md.
#
#   scripts/load-test.sh [seconds per run, default 15] [port, default 18080]
#
# Every request goes to 127.0.0.1 only; each wrk run stops by itself after its duration.
set -euo pipefail
. "$(dirname "$0")/setup.sh"
lora4j_apt_install wrk curl
duration=${1:-15}
port=${2:-18080}
cd "$LORA4J_ROOT/examples"
adapters=target/adapters
out=results/load-test.md
log=target/load-test-service.log
lua="$LORA4J_ROOT/scripts/load-test/predict.lua"
mkdir -p results target
cp_file=target/classpath.txt
mvn -B -q dependency:build-classpath -Dmdep.outputFile="$cp_file" >/dev/null
cp="target/classes:$(cat "$cp_file")"
java --enable-native-access=ALL-UNNAMED -cp "$cp" dev.lora4j.examples.DemoAdapters --adapters "$adapters"

say "starting the service on 127.0.0.1:$port"
java --enable-native-access=ALL-UNNAMED -Xms256m -Xmx256m -XX:+AlwaysPreTouch -cp "$cp" dev.lora4j.examples.serve.Serve \
  --host 127.0.0.1 --port "$port" --adapters "$adapters" --load worst-class,worst-class-dylora >"$log" 2>&1 &
pid=$!
stop_service() { kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop_service EXIT
lora4j_wait_for_service "$pid" "$LORA4J_ROOT/examples/$log" "$port" 120

rss() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
run() { # connections seconds -> the RESULT line
  local c=$1 t=$(( $1 < 2 ? $1 : 2 ))
  wrk -t"$t" -c"$c" -d"$2"s --timeout 10s --latency -s "$lua" "http://127.0.0.1:$port/predict" | grep '^RESULT'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
rss_start=$(rss)
say "warm-up: 4 connections, 5 s (RSS at start $rss_start MiB)"
run 4 5 >/dev/null
rss_warm=$(rss)
rows=()
for c in 1 4 16 16; do
  say "wrk: $c connection(s), $duration s"
  r=$(run "$c" "$duration")
  echo "  $r" >&2
  label=$c; [ ${#rows[@]} -eq 3 ] && label="$c (again)"
  rows+=("| $label | $(field requests "$r") | $(field rps "$r") | $(field p50_ms "$r") | $(field p99_ms "$r") | $(field max_ms "$r") | $(( $(field socket_errors "$r") + $(field status_errors "$r") )) | $(rss) |")
done
rss_end=$(rss)
stop_service
trap - EXIT
stopped=$(grep -c "stopped; native memory freed" "$log" || true)

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
{
  echo "# Inference service load test"
  echo
  echo "\`scripts/load-test.sh $duration $port\` on $(date -u +%Y-%m-%d): $(nproc) cores ($cpu), $(java -version 2>&1 | head -1),"
  echo "LibTorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null | cut -d+ -f1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
  echo "wrk and the service share the same cores. Service: \`Serve\` on 127.0.0.1, the Fashion-MNIST MLP 784→1000→2000→10,"
  echo "adapters \`worst-class\` (LoRA r 4) and \`worst-class-dylora\` (DyLoRA r_max 4), $(nproc) worker threads × 1 LibTorch thread,"
  echo "heap fixed at 256 MiB and pre-touched (so resident memory growth is native memory, code and metadata, not the heap filling)."
  echo "Requests: single-image \`POST /predict\`, rotating base / LoRA / DyLoRA at rank 2 ([predict.lua](../../scripts/load-test/predict.lua));"
  echo "wrk threads = min(connections, 2); $duration s per run after a 5 s warm-up at 4 connections; the last run repeats 16"
  echo "connections to show whether resident memory still grows. Load average just before the runs: $loadavg_before"
  echo "(it counts this script's own build and the service's start-up too; anything else running on these cores lowers the figures)."
  echo
  echo "| connections | requests | requests/s | p50 ms | p99 ms | max ms | errors | JVM RSS after, MiB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "JVM resident memory (VmRSS): $rss_start MiB at start, $rss_warm MiB after the warm-up, $rss_end MiB after all runs."
  echo "Graceful shutdown on SIGTERM logged \"native memory freed\": $([ "$stopped" -ge 1 ] && echo yes || echo no)."
} >"$out"
cat "$out"
say "written to examples/$out"
