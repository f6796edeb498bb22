#!/usr/bin/env bash
# Runs an example as N data-parallel ranks on this machine:
#   scripts/run-distributed.sh N <MainClass> [args...]      (MainClass in dev.lora4j.examples)
# Each rank is one JVM with PyTorch's launcher variables set: MASTER_ADDR (default 127.0.0.1),
# MASTER_PORT (default: a free port), WORLD_SIZE and RANK; its output is prefixed "[rank i]".
# When one rank fails the others are stopped, and the script exits with its status.
#
# Across machines (as torchrun --nnodes/--node_rank): on each of M hosts run
#   NNODES=M NODE_RANK=<0..M-1> MASTER_ADDR=<host of node 0> MASTER_PORT=<port> \
#     scripts/run-distributed.sh N <MainClass> [args...]
# which starts ranks NODE_RANK*N .. NODE_RANK*N+N-1 of WORLD_SIZE = M*N. Rank 0 listens on
# MASTER_PORT; Gloo then connects every pair of ranks directly (set GLOO_SOCKET_IFNAME to pick
# the interface, as with PyTorch). Any launcher that sets the four variables works the same way.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 N <MainClass> [args...]" >&2; exit 2; }
n=$1; main=$2; shift 2
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, got '$n'" >&2; exit 2; }
nnodes=${NNODES:-1}; node_rank=${NODE_RANK:-0}
[ "$nnodes" -gt 1 ] && [ -z "${MASTER_ADDR:-}" ] && { echo "NNODES=$nnodes needs MASTER_ADDR" >&2; exit 2; }
[ "$nnodes" -gt 1 ] && [ -z "${MASTER_PORT:-}" ] && { echo "NNODES=$nnodes needs MASTER_PORT" >&2; exit 2; }

. "$(dirname "$0")/setup.sh"
cd "$LORA4J_ROOT"
cp_file=examples/target/classpath.txt
# In the reactor, lora4j's own modules resolve to this checkout's jars, the native one included
# (a jar with the LibTorch line's classifier, made at package: compiled classes alone lack the shim).
classifier=$(sed -n 's/^classifier=//p' build/native/liblora4j.properties)
mvn -B -q -pl examples -am package dependency:build-classpath -DskipTests -Dmaven.javadoc.skip=true -Dmaven.source.skip=true \
  -Dlora4j.native.classifier="$classifier" -Dlora4j.native.module="$(echo "$classifier" | tr .- __)" \
  -Dmdep.outputFile="$LORA4J_ROOT/$cp_file" >/dev/null
classpath="examples/target/classes:$(cat "$cp_file")"

export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ -z "${MASTER_PORT:-}" ]; then  # a port nothing listens on
  while MASTER_PORT=$((20000 + RANDOM % 30000)); (exec 3<>"/dev/tcp/127.0.0.1/$MASTER_PORT") 2>/dev/null; do :; done
fi
export MASTER_PORT WORLD_SIZE=$((nnodes * n))

pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'stop_all; exit 130' INT TERM
for ((i = 0; i < n; i++)); do
  rank=$((node_rank * n + i))
  RANK=$rank java --enable-native-access=ALL-UNNAMED ${LORA4J_JAVA_OPTS:-} -cp "$classpath" \
    "dev.lora4j.examples.$main" "$@" > >(sed -u "s/^/[rank $rank] /") 2>&1 &
  pids+=($!)
done
status=0
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  still=()
  for p in "${running[@]}"; do
    if kill -0 "$p" 2>/dev/null; then still+=("$p"); continue; fi
    wait "$p" || status=$?
  done
  running=("${still[@]}")
  if [ "$status" -ne 0 ]; then
    echo "[run-distributed] a rank failed (status $status): stopping the others" >&2
    stop_all
    wait 2>/dev/null || true
    break
  fi
  [ ${#running[@]} -gt 0 ] && sleep 0.5
done
exit $status
