#!/usr/bin/env bash
# Load test of POST /classify (many tenants over one MiniLM encoder) on loopback, bounded in time:
# builds the examples in this checkout (mvn package, no install), writes 64 random tenant adapter
# folders (TenantFolders: PEFT LoRA r 8 on query/value + a classifier head, every 4th DyLoRA; untrained),
# starts the service with a pool budget smaller than 64 adapters (evictions happen), then runs the Java
# client ClassifyLoad at 1, 4, 16 and 16 again (does memory still grow?) connections for a fixed time each while it churns tenants
# (unload / reload), and reads the service's VmRSS at start and after each phase. Stops the service with
# SIGTERM and writes benchmarks/results/serve-load.md.
#
#   benchmarks/run-serve-load.sh [seconds per phase, default 20] [port, default 18081] [pool budget, default 12m]
#
# LORA4J_NO_SETUP=1 skips scripts/setup.sh (which installs packages and runs mvn install) when the
# machine is set up already; JAVA_HOME must then point at JDK 25.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${LORA4J_NO_SETUP:-0}" = 1 ]; then
  . "$ROOT/scripts/lib.sh"
  export PATH="$JAVA_HOME/bin:$PATH" MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow -Dstyle.color=never"
else
  . "$ROOT/scripts/setup.sh"
fi
lora4j_apt_install curl
seconds=${1:-20}
port=${2:-18081}
budget=${3:-12m}
tenants=64
cd "$ROOT"
work=examples/target/serve-load
log=$work/service.log
mkdir -p "$work" benchmarks/results
say "building the examples (package, no install)"
mvn -B -q -o package -DskipTests -pl examples -am dependency:build-classpath -Dmdep.outputFile=target/classpath.txt \
  -Dmdep.includeScope=runtime >/dev/null || mvn -B -q package -DskipTests -pl examples -am dependency:build-classpath \
  -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime >/dev/null
cp="examples/target/classes:$(cat examples/target/classpath.txt)"
jvm=(--enable-native-access=ALL-UNNAMED)
rm -rf "$work/tenants"
java "${jvm[@]}" -cp "$cp" dev.lora4j.examples.serve.TenantFolders --out "$work/tenants" --tenants "$tenants" --dylora-every 4

say "starting the service on 127.0.0.1:$port (pool budget $budget)"
java "${jvm[@]}" -Xms256m -Xmx256m -XX:+AlwaysPreTouch -cp "$cp" dev.lora4j.examples.serve.Serve --no-mlp --host 127.0.0.1 \
  --port "$port" --tenants "$work/tenants" --pool-budget "$budget" --adapters "$work" >"$log" 2>&1 &
pid=$!
stop_service() { kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop_service EXIT
lora4j_wait_for_service "$pid" "$log" "$port" 180

say "warm-up: 2 connections, 5 s"
java "${jvm[@]}" -cp "$cp" dev.lora4j.examples.serve.ClassifyLoad --url "http://127.0.0.1:$port" --pid "$pid" \
  --tenants "$tenants" --seconds 5 --connections 2 >/dev/null
say "phases: 1, 4, 16, 16 connections, $seconds s each"
java "${jvm[@]}" -cp "$cp" dev.lora4j.examples.serve.ClassifyLoad --url "http://127.0.0.1:$port" --pid "$pid" \
  --tenants "$tenants" --seconds "$seconds" --connections 1,4,16,16 --out benchmarks/results/serve-load.md
stop_service
trap - EXIT
if grep -q "stopped; native memory freed" "$log"; then
  echo "Graceful shutdown on SIGTERM logged \"native memory freed\"." >>benchmarks/results/serve-load.md
fi
say "written to benchmarks/results/serve-load.md"
