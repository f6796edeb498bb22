#!/usr/bin/env bash
# Regenerates bindings/ from native-shim/include/lora4j.h with an installed jextract
# (https://github.com/openjdk/jextract, JDK 25 build). jextract itself is not part of
# this repository: put it on PATH or set JEXTRACT=/path/to/bin/jextract.
#
# Only the shim's own symbols (lt_* functions and types, LT_* constants) are generated,
# and the header's SHA-256 is recorded so that the build fails when the header changes
# without regenerating (see BindingsMatchHeaderTest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
header=$root/native-shim/include/lora4j.h
out=$root/bindings/src/main/java
pkg=dev.lora4j.bindings
pkg_dir=$out/${pkg//.//}

jextract=${JEXTRACT:-$(command -v jextract || true)}
[ -n "$jextract" ] && [ -x "$jextract" ] || {
  echo "jextract not found: put it on PATH or set JEXTRACT=/path/to/jextract" >&2; exit 1; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# Everything the header declares, then only what belongs to the shim.
"$jextract" --dump-includes "$work/all.txt" "$header" >/dev/null
grep -E -- '--include-[a-z]+ +(lt_|LT_)' "$work/all.txt" | sed 's/ *#.*$//' > "$work/includes.txt"

rm -rf "$pkg_dir"
"$jextract" @"$work/includes.txt" --target-package "$pkg" --header-class-name LibLora4j \
  --output "$out" "$header"

res=$root/bindings/src/main/resources/${pkg//.//}
mkdir -p "$res"
sha256sum "$header" | cut -d' ' -f1 > "$res/lora4j.h.sha256"
echo "generated $(ls "$pkg_dir" | wc -l) files in $pkg_dir from $(wc -l < "$work/includes.txt") symbols"
