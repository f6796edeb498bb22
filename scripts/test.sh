#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs every test of every module.
set -euo pipefail
LORA4J_SKIP_MAVEN=1 . "$(dirname "$0")/setup.sh"
cd "$LORA4J_ROOT"
mvn -B install "$@"
