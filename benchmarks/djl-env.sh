# Sourced by the benchmark scripts (after scripts/setup.sh): points DJL 0.22.0's PyTorch engine,
# offline, at Debian's LibTorch 1.13.1 through a folder holding only links to libtorch.so,
# libtorch_cpu.so and libc10.so, so it downloads nothing and loads no LibTorch of its own.
libdir=/usr/lib/x86_64-linux-gnu
djllib=benchmarks/target/djl-libtorch
mkdir -p "$djllib"
for f in libtorch.so libtorch_cpu.so libc10.so; do
  [ -e "$libdir/$f" ] || die "$libdir/$f is missing (apt package libtorch-dev)"
  ln -sfn "$libdir/$f" "$djllib/$f"
done
export PYTORCH_LIBRARY_PATH="$LORA4J_ROOT/$djllib" PYTORCH_VERSION=1.13.1 PYTORCH_FLAVOR=cpu DJL_OFFLINE=true
# DJL extracts its JNI library (libdjl_torch.so) here rather than into ~/.djl.ai.
export DJL_CACHE_DIR="$LORA4J_ROOT/benchmarks/target/djl-cache"
