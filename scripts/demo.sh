#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs the main demo.
set -euo pipefail
exec "$(dirname "$0")/run-example.sh" RegressionDemo "$@"
