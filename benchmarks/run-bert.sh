#!/usr/bin/env bash
# BERT benchmark: all-MiniLM-L6-v2, batch 32 x sequence 128 with padding, at 1 and 2 threads.
#   lora4j (encoder forward without gradients; one LoRA step: r 8, alpha 16 on query and value,
#   mean pooling, MSE, backward, AdamW) and ONNX Runtime (forward, same ONNX file) interleaved in
#   one JVM (BertCompare), then Python torch (Debian's python3-torch, the same LibTorch) with a
#   hand-written BERT on the same checkpoint folder, twice: with glibc malloc's defaults (what a
#   Python user gets) and with the malloc settings lora4j applies at load (NativeLibrary).
# Writes benchmarks/results/bert.md (ratio table) and the raw lines under benchmarks/results/bert-<time>/.
#
#   benchmarks/run-bert.sh [ROUNDS]          (default 5; needs benchmarks/target/benchmarks.jar:
#                                             mvn -B verify -DskipTests -pl benchmarks -am)
# Threads: LibTorch intra-op threads = T, ORT intra-op threads = T, OPENBLAS_NUM_THREADS = T (Python's
# OpenBLAS; lora4j's shim pins OpenBLAS to one thread and splits large products itself).
# OPENBLAS_CORETYPE: OpenBLAS picks its kernels for the CPU unless this variable pins them; a pin
# to an older core (e.g. Haswell on an AVX-512 machine) halves LibTorch's matrix products and
# leaves ONNX Runtime (its own GEMM) alone. The script unsets it for every peer (Python too)
# unless LORA4J_BENCH_KEEP_CORETYPE=1; the table says which kernels OpenBLAS used.
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
lora4j_apt_install python3-torch
rounds=${1:-5}
[[ "${LORA4J_BENCH_KEEP_CORETYPE:-0}" == 1 ]] || unset OPENBLAS_CORETYPE
out=benchmarks/results/bert-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
ckpt=benchmarks/target/minilm-hf
tuned=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_TOP_PAD_=67108864)
core=$(OPENBLAS_VERBOSE=2 /usr/bin/python3 -c 'import torch; torch.mm(torch.ones(64, 64), torch.ones(64, 64))' 2>&1 | sed -n 's/^Core: //p' | head -1)
{
  echo "date $(date -u +%FT%TZ)"
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
  echo "openblas_core ${core:-unknown} (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})"
} > "$out/env.txt"
for t in 1 2; do
  export OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t
  echo "load before threads=$t: $(uptime)" | tee -a "$out/env.txt"
  java --enable-native-access=ALL-UNNAMED -Xmx3g -cp benchmarks/target/benchmarks.jar \
    dev.lora4j.benchmarks.BertCompare "$ckpt" "$t" "$rounds" 2>&1 | grep -v WARNING | tee "$out/lora4j-ort-$t.txt"
  /usr/bin/python3 benchmarks/python/bert_bench.py "$ckpt" --threads "$t" --iterations "$rounds" | tee "$out/python-$t.txt"
  env "${tuned[@]}" PEER=python-tuned /usr/bin/python3 benchmarks/python/bert_bench.py "$ckpt" --threads "$t" \
    --iterations "$rounds" | tee "$out/python-tuned-$t.txt"
  echo "load after threads=$t: $(uptime)" | tee -a "$out/env.txt"
done
/usr/bin/python3 benchmarks/python/bert_table.py "$out" | tee benchmarks/results/bert.md
echo "results in $out and benchmarks/results/bert.md"
