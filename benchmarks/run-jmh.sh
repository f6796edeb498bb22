#!/usr/bin/env bash
# Runs JMH benchmarks of benchmarks.jar with the project's JDK (after the usual set-up), one
# LibTorch/OpenBLAS thread unless OPENBLAS_NUM_THREADS says otherwise. Arguments go to JMH:
#   benchmarks/run-jmh.sh 'MixedBatchBenchmark|MixedModelBenchmark' -f 2 -wi 3 -i 5
#   benchmarks/run-jmh.sh -l            # list the benchmarks
set -euo pipefail
. "$(dirname "$0")/../scripts/setup.sh"
cd "$LORA4J_ROOT"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
exec java --enable-native-access=ALL-UNNAMED -jar benchmarks/target/benchmarks.jar "$@"
