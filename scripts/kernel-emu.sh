#!/usr/bin/env bash
# Compiles gpu/cuda/kernels/hostemu/prepare_emu.cpp with the host C++ compiler (the kernels
# of elementwise.cu as plain C++, launches run serially on the CPU) and runs it: the fused
# prepare kernel must equal, byte for byte, the kernels it replaced. No GPU needed; needs
# g++ and the CUDA headers (cuda_fp16.h; scripts/cuda-toolchain.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CXX" -std=c++14 -O2 -I/usr/include -o "$tmp/prepare_emu" gpu/cuda/kernels/hostemu/prepare_emu.cpp
"$tmp/prepare_emu"
