#!/usr/bin/env bash
# Starts the lora4j inference service (examples/.../serve) on 127.0.0.1 with the demo adapters:
#
#   scripts/serve.sh [--port 8080] [--adapters DIR] [other Serve flags]
#
# Sets everything up (setup.sh), pre-trains the Fashion-MNIST MLP once (cached in ~/.cache/lora4j),
# makes the demo adapters in the adapters root if missing (DemoAdapters: "worst-class", LoRA rank 4,
# and "worst-class-dylora", DyLoRA r_max 4), loads both and serves until SIGTERM / Ctrl-C, which
# stops it gracefully (running requests finish, the model's native memory is freed).
# Try it:  curl -s localhost:8080/health ; curl -s localhost:8080/adapters
set -euo pipefail
. "$(dirname "$0")/setup.sh"
cd "$LORA4J_ROOT/examples"
adapters=target/adapters
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--adapters" ] && [ $((i + 1)) -lt ${#args[@]} ] && adapters=${args[$((i + 1))]}
done
cp_file=target/classpath.txt
mvn -B -q dependency:build-classpath -Dmdep.outputFile="$cp_file" >/dev/null
cp="target/classes:$(cat "$cp_file")"
java --enable-native-access=ALL-UNNAMED -cp "$cp" dev.lora4j.examples.DemoAdapters --adapters "$adapters"
exec java --enable-native-access=ALL-UNNAMED ${LORA4J_SERVE_JVM_OPTS:-} -cp "$cp" dev.lora4j.examples.serve.Serve \
  --host 127.0.0.1 --adapters "$adapters" --load worst-class,worst-class-dylora "$@"
