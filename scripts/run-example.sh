#!/usr/bin/env bash
# Runs one example program: scripts/run-example.sh <MainClass> [args...]
# (MainClass is a simple name in dev.lora4j.examples, e.g. RegressionDemo.)
set -euo pipefail
. "$(dirname "$0")/setup.sh"
main=$1; shift
cd "$LORA4J_ROOT/examples"
cp_file=target/classpath.txt
mvn -B -q dependency:build-classpath -Dmdep.outputFile="$cp_file" >/dev/null
exec java --enable-native-access=ALL-UNNAMED -cp "target/classes:$(cat "$cp_file")" "dev.lora4j.examples.$main" "$@"
