#!/usr/bin/env bash
# Sets up everything lora4j needs on Debian 12 and builds it. Idempotent: it installs only
# what is missing and rebuilds only what changed. Source it (". scripts/setup.sh") to get
# JAVA_HOME and PATH pointing at JDK 25, or run it on its own.
#
#   apt packages: libtorch-dev (LibTorch 1.13, CPU), cmake, g++, make, maven, zlib1g-dev (the C++
#                 benchmark reads gzipped IDX), dataset-fashion-mnist,
#                 libopenblas0-pthread (LibTorch's BLAS; the reference BLAS is ~16x slower);
#                 python3-torch with LORA4J_REFERENCE_TOOLS=1 (regenerates tests' reference values)
#   JDK 25+:      found in JAVA_HOME, /usr/lib/jvm, or PATH; the script stops if there is none
#   build:        build/native/liblora4j.so (CMake), then the Maven modules (mvn install)
#   LibTorch 2.6:  scripts/trixie.sh (Debian 13 in a chroot; needs debootstrap, installed there)
set -euo pipefail
LORA4J_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LORA4J_ROOT

. "$LORA4J_ROOT/scripts/lib.sh"
lora4j_apt_install libtorch-dev cmake g++ make maven zlib1g-dev libopenblas0-pthread ca-certificates dataset-fashion-mnist debootstrap libgloo-dev iproute2
# Only to regenerate the tests' torch reference values (tools/reference/*.py): LORA4J_REFERENCE_TOOLS=1.
if [ "${LORA4J_REFERENCE_TOOLS:-0}" = 1 ]; then lora4j_apt_install python3-torch; fi

blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) say "warning: libblas.so.3 is $blas, not OpenBLAS: matmul will be slow (update-alternatives --config libblas.so.3-x86_64-linux-gnu)";;
esac

# ---------------------------------------------------------------- JDK 25
java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1; }
find_jdk() {
  local candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  for d in /usr/lib/jvm/*; do candidates+=("$d"); done
  command -v javac >/dev/null && candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")")
  for home in "${candidates[@]}"; do
    [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || continue
    local v; v=$(java_major "$home/bin/java")
    if [ -n "$v" ] && [ "$v" -ge 25 ]; then echo "$home"; return 0; fi
  done
  return 1
}
JAVA_HOME=$(find_jdk) || die "lora4j needs a JDK 25 or newer (FFM API) and none was found in JAVA_HOME,
  /usr/lib/jvm or PATH. Install one (for example Eclipse Temurin 25) and set JAVA_HOME to it."
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"
# Maven 3.8's Guava uses sun.misc.Unsafe, which JDK 25 warns about on every run.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow -Dstyle.color=never"

# ---------------------------------------------------------------- native shim
say "building the native shim (CMake, LibTorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null | cut -d+ -f1))"
cmake -S "$LORA4J_ROOT" -B "$LORA4J_ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$LORA4J_ROOT/build" -j"$(nproc)" 2>&1 | grep -E "error|warning:" >&2 || true
[ -f "$LORA4J_ROOT/build/native/liblora4j.so" ] || die "the native build failed (see: cmake --build build)"

# ---------------------------------------------------------------- Java modules
if [ "${LORA4J_SKIP_MAVEN:-0}" != 1 ]; then
  say "building the Java modules with $("$JAVA_HOME/bin/java" -version 2>&1 | head -1)"
  (cd "$LORA4J_ROOT" && mvn -B -q install -DskipTests) || die "the Maven build failed"
fi
say "setup done"
