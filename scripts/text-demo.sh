#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs the text demo: all-MiniLM-L6-v2 fine-tuned with LoRA
# to tell Debian package descriptions apart by section (examples/.../TextFineTune.java). The
# package lists come from `apt-cache dumpavail`, so apt's lists are fetched if there are none.
# Flags are passed on, e.g. --tenant system, --mode probe|full, --train 2000, --epochs 5.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lora4j_apt_lists
exec "$(dirname "$0")/run-example.sh" TextFineTune "$@"
