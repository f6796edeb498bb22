#!/usr/bin/env bash
# Data-parallel scaling of the DyLoRA fine-tune (examples DistributedDyLora) on this machine:
# 1, 2 and 4 ranks (override with RANKS="1 2"), the same global batch split over the ranks,
# one intra-op thread per rank. Writes benchmarks/results/distributed.md (the table) and the
# raw logs next to it.
#   benchmarks/run-distributed-scaling.sh [--steps N] [--global-batch G] [other DistributedDyLora flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/benchmarks/results/distributed
mkdir -p "$out"
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--steps 60 --warmup 10 --global-batch 256)
table=$root/benchmarks/results/distributed.md
{
  echo "# Data-parallel DyLoRA fine-tune: scaling on one machine"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg). Flags: ${args[*]}."
  echo
  echo "| ranks | batch per rank | step time (ms) | gradient all-reduce (ms) | all-reduce share | images/s | speed-up |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
} > "$table"
base=""
for n in ${RANKS:-1 2 4}; do
  log=$out/ranks-$n.log
  LORA4J_SKIP_MAVEN=1 "$root/scripts/run-distributed.sh" "$n" DistributedDyLora "${args[@]}" > "$log" 2>&1
  line=$(grep -o 'RESULT .*' "$log")
  val() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<< "$line"; }
  world=$(val world); batch=$(val batch); step=$(val step_ms); reduce=$(val allreduce_ms); share=$(val share)
  ips=$(awk -v b="$batch" -v w="$world" -v s="$step" 'BEGIN { printf "%.0f", b * w * 1000 / s }')
  [ -z "$base" ] && base=$ips
  speedup=$(awk -v a="$ips" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
  printf '| %s | %s | %.1f | %.2f | %.1f%% | %s | %s |\n' "$world" "$batch" "$step" "$reduce" \
    "$(awk -v s="$share" 'BEGIN { print 100 * s }')" "$ips" "$speedup" >> "$table"
done
echo >> "$table"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$table"
cat "$table"
