#!/usr/bin/env bash
# Recompiles every gpu/cuda/kernels/*.cu into a temporary directory with the flags of the
# Makefile's ptx target and diffs the result with the committed .ptx files. Fails when a
# kernel source changed without `make ptx`, or when the compiler is not CUDA 11.8's (the
# committed PTX is 11.8's output; run scripts/cuda-toolchain.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-nvcc}
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check-ptx: $NVCC not found (run scripts/cuda-toolchain.sh)" >&2
  exit 2
fi
if ! "$NVCC" --version | grep -q "release 11.8"; then
  echo "check-ptx: need nvcc from CUDA 11.8, have: $("$NVCC" --version | tail -1)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=$(make -s --no-print-directory -f Makefile print-nvccflags 2>/dev/null || echo "-ptx -arch=sm_80 -O3 -std=c++14")
status=0
for cu in gpu/cuda/kernels/*.cu; do
  ptx=${cu%.cu}.ptx
  out=$tmp/$(basename "$ptx")
  # shellcheck disable=SC2086
  "$NVCC" $flags -o "$out" "$cu"
  if [ ! -f "$ptx" ]; then
    echo "check-ptx: $ptx is missing (run make ptx)" >&2
    status=1
  elif ! diff -q "$ptx" "$out" >/dev/null; then
    echo "check-ptx: $ptx differs from a fresh compile of $cu (run make ptx):" >&2
    diff "$ptx" "$out" | head -20 >&2 || true
    status=1
  fi
done
for ptx in gpu/cuda/kernels/*.ptx; do
  [ -f "${ptx%.ptx}.cu" ] || { echo "check-ptx: $ptx has no source" >&2; status=1; }
done
[ $status -eq 0 ] && echo "check-ptx: $(ls gpu/cuda/kernels/*.ptx | wc -l) PTX files match their sources"
exit $status
