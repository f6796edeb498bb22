#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs the main demo: seed 000's LoRA fine-tuning on
# Fashion-MNIST (examples/.../FineTune.java). Flags are passed on, e.g. --limit 10000.
set -euo pipefail
exec "$(dirname "$0")/run-example.sh" FineTune "$@"
