#!/usr/bin/env bash
# Builds and tests lora4j against LibTorch 2.6 without touching the host: a Debian 13 (trixie)
# tree is bootstrapped once into ~/.cache/lora4j/trixie (reused by later runs and clones), Debian's
# libtorch-dev 2.6, python3-torch 2.6 and OpenJDK 25 are installed in it, and the build runs
# there in a chroot that sees this work tree and ~/.m2 at the same paths as the host.
#
#   scripts/trixie.sh test [maven args]   build the shim and run every module's tests (mvn verify)
#   scripts/trixie.sh run CMD [ARGS]      run a command in the work tree inside the chroot
#   scripts/trixie.sh prepare             only bootstrap / update the tree
#
# The mounts (/proc, /dev, /sys, the work tree, ~/.m2) live in a private mount namespace
# (unshare), so they vanish when the script ends, however it ends; a trap unmounts them too.
# Needs root (debootstrap, chroot). Environment: LORA4J_TRIXIE (the tree's folder),
# LORA4J_TRIXIE_MIRROR (a Debian mirror; default: the one the host's apt uses).
set -euo pipefail
LORA4J_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$LORA4J_ROOT/scripts/lib.sh"

# Outside the work tree, so fresh clones (CI) and worktrees share one tree.
TREE=${LORA4J_TRIXIE:-${XDG_CACHE_HOME:-$HOME/.cache}/lora4j/trixie}
# Bump when the package list changes: the tree is then updated on the next run.
PACKAGES=(libtorch-dev python3-torch libgloo-dev openjdk-25-jdk-headless cmake g++ make maven zlib1g-dev
          libopenblas0-pthread ca-certificates dataset-fashion-mnist iproute2
          libharfbuzz0b libfontconfig1 fonts-dejavu-core)  # fonts: the examples draw plots (xchart)
STAMP="$TREE/.lora4j-packages"
TRIXIE_JAVA_HOME=/usr/lib/jvm/java-25-openjdk-amd64
# Where the 2.6 shim is built (beside the host's build/ for 1.13; both git-ignored).
NATIVE_BUILD=build/libtorch2.6

host_mirror() {
  local m
  m=$(grep -hE '^[[:space:]]*(deb|URIs:)[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' \
        | grep -v security | head -1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

[ "$(id -u)" -eq 0 ] || die "scripts/trixie.sh needs root (debootstrap and chroot)"
cmd=${1:-test}; shift || true

# ------------------------------------------------------------ inside the private mount namespace
if [ "${LORA4J_IN_NAMESPACE:-0}" != 1 ]; then
  lora4j_apt_install debootstrap
  if [ ! -x "$TREE/usr/bin/apt-get" ]; then
    mirror=${LORA4J_TRIXIE_MIRROR:-$(host_mirror)}
    say "bootstrapping Debian 13 (trixie) into $TREE from $mirror (once; reused later)"
    rm -rf "$TREE"; mkdir -p "$TREE"
    start=$SECONDS
    debootstrap --variant=minbase trixie "$TREE" "$mirror" >"$TREE.debootstrap.log" 2>&1 \
      || { tail -20 "$TREE.debootstrap.log" >&2; rm -rf "$TREE"; die "debootstrap failed (log: $TREE.debootstrap.log)"; }
    say "debootstrap took $((SECONDS - start)) s"
  fi
  LORA4J_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$cmd" "$@"
fi

unmount_all() {
  for m in "$TREE/root/.m2" "$TREE$LORA4J_ROOT" "$TREE/sys" "$TREE/dev" "$TREE/proc"; do
    mountpoint -q "$m" && umount -l "$m" 2>/dev/null || true
  done
}
trap unmount_all EXIT
mount -t proc proc "$TREE/proc"
mount --rbind /dev "$TREE/dev"
mount --rbind /sys "$TREE/sys"
mkdir -p "$TREE$LORA4J_ROOT" "$TREE/root/.m2" "$HOME/.m2"
mount --bind "$LORA4J_ROOT" "$TREE$LORA4J_ROOT"
mount --bind "$HOME/.m2" "$TREE/root/.m2"
cp -L /etc/resolv.conf "$TREE/etc/resolv.conf"

in_tree() { # runs a bash script inside the chroot, in the work tree
  chroot "$TREE" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=$TRIXIE_JAVA_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    JAVA_HOME=$TRIXIE_JAVA_HOME \
    MAVEN_OPTS="--sun-misc-unsafe-memory-access=allow -Dstyle.color=never" \
    LORA4J_NATIVE_BUILD="$LORA4J_ROOT/$NATIVE_BUILD" \
    /bin/bash -c "cd '$LORA4J_ROOT' && $1" bash "${@:2}"
}

if [ "$(cat "$STAMP" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  say "installing into the trixie tree: ${PACKAGES[*]}"
  start=$SECONDS
  in_tree 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
    "${PACKAGES[@]}"
  echo "${PACKAGES[*]}" >"$STAMP"
  say "apt-get install took $((SECONDS - start)) s"
fi

case "$cmd" in
  prepare) ;;
  run) in_tree '"$@"' "$@" ;;
  test)
    say "LibTorch $(in_tree "dpkg-query -W -f='\${Version}' libtorch-dev") in trixie: building the shim into $NATIVE_BUILD"
    in_tree 'cmake -S . -B "$LORA4J_NATIVE_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$LORA4J_NATIVE_BUILD" -j"$(nproc)"'
    say "the shim's own checks (ctest)"
    in_tree 'ctest --test-dir "$LORA4J_NATIVE_BUILD" --output-on-failure'
    say "running the tests on LibTorch 2.6 with $(in_tree 'java -version 2>&1 | head -1')"
    classifier=$(sed -n 's/^classifier=//p' "$LORA4J_ROOT/$NATIVE_BUILD/native/liblora4j.properties")
    # The host's 1.13 shim, when built, must be refused here with a clear message (LibTorchMismatchTest).
    foreign=$LORA4J_ROOT/build/native/liblora4j.so
    in_tree 'mvn -B verify -Dlora4j.native.dir="$LORA4J_NATIVE_BUILD/native" -Dlora4j.target=target-libtorch2.6 \
      -Dlora4j.native.classifier="$1" -Dlora4j.native.module="$(echo "$1" | tr .- __)" -Dlora4j.test.foreignShim="$2" "${@:3}"' \
      "$classifier" "$foreign" "$@"
    ;;
  *) die "unknown command '$cmd' (test, run, prepare)" ;;
esac
