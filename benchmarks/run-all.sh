#!/usr/bin/env bash
# The comparison, in one command: lora4j against DJL 0.22.0 (its PyTorch engine), C++ straight
# on LibTorch (the limit) and Python with Debian's python3-torch (what users would otherwise
# pick), all on the very same LibTorch build (Debian's 1.13.1), for the work
#   (a) add of 1-element tensors, result freed     (b) linear x[10,784]·W[1000,784]ᵀ + b
#   (c) LoRA-linear training step, r=4, SGD        (d) seed-000 MLP 784→1000→2000→10 step, Adam
#   (e) the MLP's LoRA step, rank 1, frozen base   (f) merged-adapter inference vs the base's
#   (g) the demo's pre-training loop, per step: Fashion-MNIST from Debian's IDX files (10,000
#       images, loaded once), a shuffled batch of 10 gathered each step, (d)'s step, loss read back
# at 1 and at 2 intra-op threads (OpenBLAS threads = LibTorch threads), with one allocator
# setting for every peer (through the environment). Writes benchmarks/results/latest.md (the
# table), benchmarks/results/latest.png (the chart) and the raw data in
# benchmarks/results/latest/, and puts the table into README.md's performance section.
#
#   benchmarks/run-all.sh                   # the full run (JMH 3 forks × 5 × 1 s; ~25 min on 2 cores)
#   benchmarks/run-all.sh --quick           # a smoke run (1 fork × 3 × 1 s, C++/Python 3 × 0.5 s; ~8 min)
#   options: --threads "1 2"                # thread counts to run
#            --allocator tuned|glibc|jemalloc
#                     tuned (default): glibc with mmap_threshold 32 MiB, trim_threshold 256 MiB,
#                       top_pad 64 MiB (GLIBC_TUNABLES) — what lora4j sets for itself by default
#                     glibc: glibc's defaults (LORA4J_MALLOC=default, so lora4j does not tune it)
#                     jemalloc: LD_PRELOAD libjemalloc.so.2 with its defaults
#            --allocator-study              # instead: (d) under all three allocators, every peer,
#                                           # 1 thread, into benchmarks/results/allocator.md
#            --omp-wait passive|active      # OMP_WAIT_POLICY for DJL, C++ and Python (default passive:
#                                           # with OpenBLAS threads > 1, libgomp's spinning threads
#                                           # fight OpenBLAS's for the cores; see the README)
#            --lora4j-wait short|passive|active|default
#                                           # lora4j's -Dlora4j.ompWaitPolicy (default short: lora4j's
#                                           # own default, a short spin then sleep; default: follow
#                                           # --omp-wait as the other peers do)
#            --runs N                       # N whole runs back to back (each into benchmarks/results/run-K/,
#                                           # the last also into latest/), then the spread of every ratio
#                                           # and target across them: benchmarks/results/spread.md
#            --no-readme                    # leave README.md alone
#            --works "mlp_step train_loop"  # only these works (names as bench_native's; default all:
#                                           # add linear lora_step mlp_step mlp_lora_step infer_base
#                                           # infer_merged train_loop)
#            --jmh "ARGS"                   # JMH settings instead of the above (e.g. "-f 1 -wi 1 -i 3")
#            --jvm "ARGS"                   # the heap flags of the JVM peers' JVMs (lora4j, DJL), default
#                                           # "-Xms512m -Xmx512m -XX:+AlwaysPreTouch": a heap touched once at
#                                           # start. On this machine a page's first touch costs ~8 µs, and a
#                                           # growing G1 heap moved (a) between 720 and 1100 ns for seconds at a
#                                           # time (see PerCallInterleaved); --jvm "" measures that default
#            --libtorch 2.6                 # lora4j, C++ and Python on Debian 13's LibTorch 2.6 in the
#                                           # trixie tree (scripts/trixie.sh; DJL 0.22 has no 2.6 build),
#                                           # into benchmarks/results/latest-libtorch2.6/, then the
#                                           # 1.13-vs-2.6 table benchmarks/results/libtorch-lines.md beside
#                                           # the newest 1.13 run (benchmarks/results/latest/)
set -euo pipefail
in_trixie=0
[ "${1:-}" = --in-trixie ] && { in_trixie=1; shift; }
if [ "$in_trixie" = 1 ]; then
  # Inside the Debian 13 tree (scripts/trixie.sh run): its LibTorch, Python and JDK; the host built
  # the Java side (benchmarks.jar is platform-free), the tree builds the shim and C++ peer for 2.6.
  LORA4J_ROOT=$(cd "$(dirname "$0")/.." && pwd)
  . "$LORA4J_ROOT/scripts/lib.sh"
  cd "$LORA4J_ROOT"
else
  . "$(dirname "$0")/../scripts/setup.sh"
  cd "$LORA4J_ROOT"
  lora4j_apt_install python3-torch libjemalloc2
fi

threads_list="1 2"
allocator=tuned
quick=0
study=0
readme=1
jmh_extra=""
omp_wait=passive
lora4j_wait=short
libtorch=1.13
runs=1
all_args=("$@")
works_arg=""
jvm_heap="-Xms512m -Xmx512m -XX:+AlwaysPreTouch"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --threads) threads_list="$2"; shift ;;
    --allocator) allocator="$2"; shift ;;
    --allocator-study) study=1 ;;
    --no-readme) readme=0 ;;
    --omp-wait) omp_wait="$2"; shift ;;
    --lora4j-wait) lora4j_wait="$2"; shift ;;
    --jmh) jmh_extra="$2"; shift ;;
    --jvm) jvm_heap="$2"; shift ;;
    --libtorch) libtorch="$2"; shift ;;
    --works) works_arg="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    *) die "unknown option $1 (see the comment at the top of $0)" ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  jmh_args="-f 1 -wi 2 -w 1 -i 3 -r 1"; native_s=0.5; native_i=3
else
  jmh_args="-f 3 -wi 3 -w 1 -i 5 -r 1"; native_s=1; native_i=10
fi
[ -n "$jmh_extra" ] && jmh_args=$jmh_extra # --jmh replaces the JMH settings

# ---------------------------------------------------------------- allocator, one for every peer
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
set_allocator() {
  unset GLIBC_TUNABLES LD_PRELOAD LORA4J_MALLOC || true
  case "$1" in
    tuned)
      export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864
      allocator_text="glibc 2.36 with GLIBC_TUNABLES mmap_threshold=32 MiB, trim_threshold=256 MiB, top_pad=64 MiB (lora4j's own default setting)" ;;
    glibc)
      export LORA4J_MALLOC=default
      allocator_text="glibc 2.36 defaults (LORA4J_MALLOC=default: lora4j leaves malloc alone)" ;;
    jemalloc)
      [ -e "$jemalloc" ] || die "$jemalloc is missing (apt package libjemalloc2)"
      export LD_PRELOAD=$jemalloc
      allocator_text="jemalloc 5 (LD_PRELOAD=$jemalloc, its default settings)" ;;
    *) die "--allocator must be tuned, glibc or jemalloc" ;;
  esac
}

jar=benchmarks/target/benchmarks.jar
python=/usr/bin/python3
case "$libtorch" in
  1.13) ;;
  2.6)
    if [ "$in_trixie" = 0 ]; then
      [ -f "$jar" ] || die "build first (scripts/setup.sh)"
      # The tree starts from an empty environment: hand it the host's OpenBLAS settings (e.g. a
      # pinned OPENBLAS_CORETYPE), so that both lines multiply with the same kernels.
      blas_env=()
      for v in $(compgen -e | grep '^OPENBLAS_' || true); do blas_env+=("$v=${!v}"); done
      "$LORA4J_ROOT/scripts/trixie.sh" run env "${blas_env[@]}" benchmarks/run-all.sh --in-trixie "${all_args[@]}"
      java -cp "$jar" dev.lora4j.benchmarks.report.LibTorchLines benchmarks/results/latest \
        benchmarks/results/latest-libtorch2.6 benchmarks/results/libtorch-lines.md
      if [ "$readme" = 1 ] && grep -q '<!-- benchmarks:lines:start -->' README.md; then
        awk -v table=benchmarks/results/libtorch-lines.md '
          /<!-- benchmarks:lines:start -->/ { print; while ((getline line < table) > 0) if (line !~ /^# /) print line; skip = 1; next }
          /<!-- benchmarks:lines:end -->/ { skip = 0 }
          !skip' README.md >README.md.tmp && mv README.md.tmp README.md
        say "README.md's LibTorch 1.13 vs 2.6 table now shows this run"
      fi
      exit 0
    fi ;;
  *) die "--libtorch must be 1.13 or 2.6, got $libtorch" ;;
esac

# JMH's forks inherit the host JVM's arguments (heap flags: DJL's forks too)
java_opts=(-Dlora4j.ompWaitPolicy="$lora4j_wait")
read -r -a jvm_heap_args <<<"$jvm_heap"
java_opts+=("${jvm_heap_args[@]}")
peer_classes='Lora4jWork|Lora4jLoop|DjlWork|DjlLoop'
if [ "$in_trixie" = 1 ]; then
  build26=${LORA4J_NATIVE_BUILD:-build/libtorch2.6}
  say "building the shim and the C++ peer for LibTorch $(dpkg-query -W -f='${Version}' libtorch-dev) into $build26"
  cmake -S . -B "$build26" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build26" -j"$(nproc)" 2>&1 | grep -E "error|warning:" >&2 || true
  native=$build26/native/lora4j_bench_native
  java_opts+=(-Dlora4j.shim="$(cd "$build26/native" && pwd)/liblora4j.so")
  peer_classes='Lora4jWork|Lora4jLoop' # no DJL on LibTorch 2.6
else
  # ---------------------------------------------------------------- DJL offline on Debian's LibTorch
  . benchmarks/djl-env.sh
  native=build/native/lora4j_bench_native
fi
[ -x "$native" ] && [ -f "$jar" ] || die "build first (scripts/setup.sh)"
java_opts+=(-Dlora4j.benchLoops="$(dirname "$native")/liblora4j_bench_loops.so") # (a)'s C++ loop, for PerCallInterleaved

# One peer set at one thread count: C++, Python, then lora4j and DJL in one JMH run.
run_peers() { # out-dir threads works(cpp/python names) jmh-regex
  local dir=$1 t=$2 works=$3 regex=$4
  export OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t OMP_WAIT_POLICY=${omp_wait^^}
  say "C++ on LibTorch, $t thread(s): $works"
  "$native" linear 0.2 1 "$t" >/dev/null 2>&1 || true # warm the page cache
  : >"$dir/cpp-$t.txt"
  for w in $works; do "$native" "$w" "$native_s" "$native_i" "$t" | tee -a "$dir/cpp-$t.txt" | grep -E '^RESULT|last loss' >&2; done
  say "Python (torch $("$python" -c 'import torch; print(torch.__version__)')), $t thread(s)"
  "$python" benchmarks/python/bench.py --seconds "$native_s" --iterations "$native_i" --threads "$t" $works \
    | tee "$dir/python-$t.txt" | grep -E '^RESULT|last loss' >&2
  say "lora4j and DJL (JMH $jmh_args), $t thread(s)"
  set +e
  java --enable-native-access=ALL-UNNAMED "${java_opts[@]}" -jar "$jar" "$regex" -p threads="$t" $jmh_args \
    -rf json -rff "$dir/jmh-$t.json" > "$dir/jmh-$t.log" 2>&1
  local rc=$?
  set -e
  grep -E '^(Lora4jWork|Lora4jLoop|djl\.DjlWork|djl\.DjlLoop)|last loss|\[djl\] mapped .*libtorch_cpu' "$dir/jmh-$t.log" | sort -u >&2 || true
  # JMH exits 0 when every benchmark threw: a run without results is a failure too.
  [ $rc -eq 0 ] && grep -q '"benchmark"' "$dir/jmh-$t.json" 2>/dev/null || die "JMH failed (exit $rc), see $dir/jmh-$t.log"
  # lora4j's interleaved measurements, which decide their targets in the report: the machine drifts
  # more between two JMH benchmarks than (g) adds to (d), or than merging changes inference.
  [[ " $works " == *" add "* ]] && interleaved "$dir" percall "$t" "(a) against C++'s add" PerCallInterleaved 64 20000
  [[ " $works " == *" train_loop "* && " $works " == *" mlp_step "* ]] &&
    interleaved "$dir" loop "$t" "(g) and (d)" TrainLoopInterleaved 16 100
  [[ " $works " == *" infer_base "* && " $works " == *" infer_merged "* ]] &&
    interleaved "$dir" infer "$t" "merged and base inference" InferInterleaved 64 200
  return 0
}

# One interleaved tool at t threads into DIR/PREFIX-T.txt: dir prefix threads what class rounds block
interleaved() {
  local dir=$1 prefix=$2 t=$3 what=$4 cls=$5 rounds=$6 block=$7
  say "lora4j: $what interleaved in one JVM, $t thread(s)"
  java --enable-native-access=ALL-UNNAMED "${java_opts[@]}" -cp "$jar" "dev.lora4j.benchmarks.$cls" "$rounds" "$block" "$t" \
    > "$dir/$prefix-$t.txt" 2>"$dir/$prefix-$t.log" || die "$cls failed, see $dir/$prefix-$t.log"
  grep -E 'median' "$dir/$prefix-$t.txt" >&2 || true
}

write_meta() { # dir
  local dir=$1
  {
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "cores=$(nproc --all)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
    echo "jdk=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.runtime.version = //p')"
    echo "libtorch=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null)"
    echo "python=$("$python" -c 'import sys; print(sys.version.split()[0])')"
    echo "torch=$("$python" -c 'import torch; print(torch.__version__)') (python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null))"
    [ "$in_trixie" = 0 ] && echo "djl=0.22.0 (pytorch-jni 1.13.1-0.22.0, offline on Debian's libtorch)"
    echo "os_release=$(. /etc/os-release && echo "$VERSION_CODENAME")"
    echo "jmh=1.37, $jmh_args, warm JVMs"
    echo "native=one warm-up iteration then $native_i iterations of $native_s s, calls in ~1 ms batches"
    echo "allocator=$allocator_text"
    echo "ompwait=OMP_WAIT_POLICY=${omp_wait^^} for DJL, C++ and Python; lora4j: -Dlora4j.ompWaitPolicy=$lora4j_wait$([ "$lora4j_wait" = short ] && echo " (its default: OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000)")"
    echo "jvm=${jvm_heap:-default heap} (for lora4j and DJL)"
    echo "openblas_env=$(compgen -e | grep '^OPENBLAS_' | while read -r v; do printf '%s=%s ' "$v" "${!v}"; done)"
    echo "command=$command"
    echo "load_before=$load_before"
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$dir/meta.txt"
}

all_works="add linear lora_step mlp_step mlp_lora_step infer_base infer_merged train_loop"
works=${works_arg:-$all_works}
for w in $works; do case " $all_works " in *" $w "*) ;; *) die "unknown work $w (one of: $all_works)" ;; esac; done
# The JMH methods of these works (mlp_step -> mlpStep) in the lora4j and DJL classes.
methods=$(for w in $works; do echo "$w" | sed -E 's/_(.)/\U\1/g'; done | paste -sd'|')
jmh_regex="($peer_classes)\.($methods)[A-Za-z0-9]*\$" # with lora4j's variants (mlpStepX)
command="benchmarks/run-all.sh"; [ "$quick" = 1 ] && command="$command --quick"
[ -n "$works_arg" ] && command="$command --works \"$works_arg\""
[ "$threads_list" != "1 2" ] && command="$command --threads \"$threads_list\""
[ "$allocator" != tuned ] && command="$command --allocator $allocator"
case "$lora4j_wait" in short | passive | active | default) ;; *) die "--lora4j-wait needs short, passive, active or default, got $lora4j_wait" ;; esac
[ "$lora4j_wait" != short ] && command="$command --lora4j-wait $lora4j_wait"
[ "$omp_wait" != passive ] && command="$command --omp-wait $omp_wait"
[ "$jvm_heap" != "-Xms512m -Xmx512m -XX:+AlwaysPreTouch" ] && command="$command --jvm \"$jvm_heap\""
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number, got $runs"
[ "$runs" -gt 1 ] && { [ "$in_trixie" = 0 ] && [ "$libtorch" = 1.13 ] || die "--runs is for the LibTorch 1.13 comparison"; }
[ "$runs" -gt 1 ] && command="$command --runs $runs"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

results=benchmarks/results
if [ "$study" = 1 ]; then
  # ------------------------------------------------------------ (d) under three allocators
  table=$results/allocator.md
  {
    echo "# (d) MLP training step under three allocators, every peer, 1 thread"
    echo
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') on $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') ($(nproc --all) cores);"
    echo "\`$command --allocator-study\`. Medians of the iterations; in brackets, the ratio to the same peer under glibc's defaults."
    echo
    echo "| allocator | lora4j | DJL | C++ | Python |"
    echo "|---|---:|---:|---:|---:|"
  } >"$table.tmp"
  for a in glibc tuned jemalloc; do
    set_allocator "$a"
    dir=$results/allocator-$a; rm -rf "$dir"; mkdir -p "$dir"
    run_peers "$dir" 1 mlp_step 'Lora4jWork\.mlpStep|DjlWork\.mlpStep'
    write_meta "$dir"
  done
  java -cp "$jar" dev.lora4j.benchmarks.report.AllocatorStudy "$results" >>"$table.tmp"
  mv "$table.tmp" "$table"
  cat "$table"
  exit 0
fi

set_allocator "$allocator"
run_dirs=()
for run in $(seq 1 "$runs"); do
  dir=$results/latest
  [ "$runs" -gt 1 ] && dir=$results/run-$run
  [ "$in_trixie" = 1 ] && { dir=$results/latest-libtorch2.6; command="benchmarks/run-all.sh --libtorch 2.6${command#benchmarks/run-all.sh}"; }
  rm -rf "$dir"; mkdir -p "$dir"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  for t in $threads_list; do
    run_peers "$dir" "$t" "$works" "$jmh_regex"
  done
  write_meta "$dir"
  run_dirs+=("$dir")
done
[ "$in_trixie" = 1 ] && { say "wrote $dir"; exit 0; }
dir=$results/latest
if [ "$runs" -gt 1 ]; then
  rm -rf "$dir"; cp -r "${run_dirs[-1]}" "$dir"
  java -cp "$jar" dev.lora4j.benchmarks.report.Spread "${run_dirs[@]}" "$results/spread.md"
  say "wrote $results/spread.md"
fi
java -cp "$jar" dev.lora4j.benchmarks.report.Report "$dir" "$results/latest.md" "$results/latest.png"
say "wrote $results/latest.md and $results/latest.png"

if [ "$readme" = 1 ] && grep -q '<!-- benchmarks:latest:start -->' README.md; then
  awk -v table="$results/latest.md" '
    /<!-- benchmarks:latest:start -->/ { print; while ((getline line < table) > 0) if (line !~ /^# /) print line; skip = 1; next }
    /<!-- benchmarks:latest:end -->/ { skip = 0 }
    !skip' README.md >README.md.tmp && mv README.md.tmp README.md
  say "README.md's performance section now shows this run"
fi
