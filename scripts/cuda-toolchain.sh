#!/usr/bin/env bash
# Installs the CUDA 11.8 toolkit (headers, libcuda.so link stub, nvcc) from Debian's
# non-free component. Idempotent: does nothing when nvcc and cuda.h are already present.
# Used by .ci/run (to compile and vet the `cuda` build tag) and by people building the GPU
# worker. Recipe verified in shared/GPU.md. Needs root (CI and dev machines run as root).
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && [ -f /usr/include/cuda.h ]; then
  echo "cuda-toolchain: present ($(nvcc --version | tail -1))"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO tee /etc/apt/sources.list.d/nonfree.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit >/dev/null
echo "cuda-toolchain: installed ($(nvcc --version | tail -1))"
