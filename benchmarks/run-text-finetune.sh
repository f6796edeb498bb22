#!/usr/bin/env bash
# The text fine-tune in Java (lora4j, TextFineTune --mode lora) and in Python (torch from Debian's
# python3-torch, the same LibTorch; benchmarks/python/text_finetune.py): the Java run exports its
# tokenized splits, epoch orders, initial LoRA factors and head, and hyper-parameters, and Python
# replays exactly that run on the same weights. Same threads on both sides (torch/LibTorch
# intra-op threads, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, OMP_WAIT_POLICY=PASSIVE) and the same
# malloc settings (lora4j's default, given to Python through GLIBC_TUNABLES). Prints the table.
#
# usage: benchmarks/run-text-finetune.sh [--threads T] [--repeat N] [TextFineTune flags: --tenant, --train, --epochs, ...]
#   --repeat N runs the pair N times, interleaved (Java, Python, Java, Python, ...).
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
lora4j_apt_install python3-torch
lora4j_apt_lists
threads=2
repeat=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE
out=$LORA4J_ROOT/benchmarks/results/text-finetune-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
for round in $(seq "$repeat"); do
  # Interleaved: Java, then Python on what that Java run exported, so both see the same load.
  uptime | tee -a "$out/load.txt"
  LORA4J_SKIP_MAVEN=1 scripts/run-example.sh TextFineTune --mode lora --threads "$threads" --out "$out" \
    --export-data "$out/export.safetensors" ${args[@]+"${args[@]}"} | tee "$out/java-$round.txt"
  uptime | tee -a "$out/load.txt"
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864 \
    /usr/bin/python3 benchmarks/python/text_finetune.py "$HOME/.cache/lora4j/all-minilm-l6-v2" "$out/export.safetensors" \
    --threads "$threads" | tee "$out/python-$round.txt"
done
uptime | tee -a "$out/load.txt"
rm -f "$out/export.safetensors"
{
  echo "| round | side | tenant | train samples | epochs | steps | test accuracy | train time (s) | steps/s | first loss | final loss |"
  echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for round in $(seq "$repeat"); do
    for f in java python; do
      grep '^RESULT' "$out/$f-$round.txt" | tr ' ' '\n' | awk -F= -v side="$f" -v round="$round" '
        NF == 2 { v[$1] = $2 }
        END { printf "| %s | %s | %s | %s | %s | %s | %.2f %% | %s | %s | %s | %s |\n", round,
                side == "java" ? "lora4j (Java)" : "torch (Python)", v["tenant"], v["train"], v["epochs"], v["steps"],
                100 * v["test_accuracy"], v["train_seconds"], v["steps_per_second"], v["first_loss"], v["final_loss"] }'
    done
  done
} | tee "$out/table.md"
echo "results in $out"
