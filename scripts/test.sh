#!/usr/bin/env bash
# Runs every test of every module on one LibTorch line, then builds and runs the user project
# (examples/user-project) against the artifacts this build publishes to a private local repository,
# and, on the host's line, two data-parallel ranks through scripts/run-distributed.sh.
#
#   scripts/test.sh [--libtorch 1.13|2.6] [maven args]
#
#   --libtorch 1.13  (default) the host's LibTorch: Debian 12's libtorch-dev
#   --libtorch 2.6   Debian 13's libtorch-dev 2.6 in a chroot under ~/.cache/lora4j/trixie (scripts/trixie.sh;
#                    the first run bootstraps it, later runs reuse it)
set -euo pipefail
line=1.13
if [ "${1:-}" = "--libtorch" ]; then line=${2:?--libtorch needs 1.13 or 2.6}; shift 2; fi
case "$line" in
  2.6) exec "$(dirname "$0")/trixie.sh" test "$@" ;;
  1.13) ;;
  *) echo "scripts/test.sh: --libtorch must be 1.13 (the host's) or 2.6 (Debian 13 chroot), got $line" >&2; exit 2 ;;
esac
LORA4J_SKIP_MAVEN=1 . "$(dirname "$0")/setup.sh"
cd "$LORA4J_ROOT"
classifier=$(sed -n 's/^classifier=//p' build/native/liblora4j.properties)
say "the shim's own checks (ctest)"
ctest --test-dir build --output-on-failure
# The 2.6 shim, when built (scripts/test.sh --libtorch 2.6), must be refused here (LibTorchMismatchTest).
mvn -B verify -Dlora4j.native.classifier="$classifier" -Dlora4j.native.module="$(echo "$classifier" | tr .- __)" \
  -Dlora4j.test.foreignShim="$LORA4J_ROOT/build/libtorch2.6/native/liblora4j.so" "$@"
scripts/user-project.sh
say "the launcher: two data-parallel ranks of an example (scripts/run-distributed.sh)"
out=$(LORA4J_SKIP_MAVEN=1 scripts/run-distributed.sh 2 DistributedDyLora --steps 12 --warmup 2 --limit 2000 2>&1) \
  || { echo "$out" >&2; die "scripts/run-distributed.sh failed"; }
echo "$out" | grep -q "max deviation 0.00e+00" || { echo "$out" >&2; die "the ranks ended with different adapters"; }
! echo "$out" | grep -q "the safety net freed" || { echo "$out" >&2; die "the example leaked tensors"; }
