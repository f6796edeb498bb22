#!/usr/bin/env bash
# BERT benchmark: all-MiniLM-L6-v2, batch 32 x sequence 128, one thread everywhere.
#   lora4j (JMH BertBenchmark: inference, one LoRA step) and ONNX Runtime (inference) on the same
#   ONNX file; Python torch (Debian's python3-torch, same LibTorch) with a hand-written BERT on
#   the checkpoint folder BertBenchmark imports (benchmarks/target/minilm-hf).
# Needs: mvn -B verify -DskipTests (builds benchmarks/target/benchmarks.jar).
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
lora4j_apt_install python3-torch
export OPENBLAS_NUM_THREADS=1
out=benchmarks/results/bert-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
java --enable-native-access=ALL-UNNAMED -jar benchmarks/target/benchmarks.jar BertBenchmark "$@" | tee "$out/jmh.txt"
/usr/bin/python3 benchmarks/python/bert_bench.py benchmarks/target/minilm-hf | tee "$out/python.txt"
echo "results in $out"
