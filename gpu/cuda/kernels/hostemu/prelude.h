// Host emulation of the CUDA built-ins that elementwise.cu uses, so that g++ can compile
// the kernels as plain C++ and run a launch serially (block by block, thread by thread) on
// the CPU: enough for kernels without inter-thread communication (prepare_bufs,
// guard_check, zero_extent). The other kernels compile against stubs and are never called. Used by
// prepare_emu.cpp (scripts/kernel-emu.sh); needs the CUDA headers (cuda_fp16.h).
#pragma once
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <algorithm>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
struct dim3e { unsigned x, y, z; };
extern dim3e blockIdx, threadIdx, blockDim, gridDim;
struct uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { uint4 u = {a, b, c, d}; return u; }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { unsigned long long o = *p; if (v < o) *p = v; return o; }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) { unsigned long long o = *p; if (v > o) *p = v; return o; }
inline void __syncthreads() {}
inline float __shfl_xor_sync(unsigned, float v, int) { return v; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
using std::min;
using std::max;
#include <cuda_fp16.h>
inline __half __ushort_as_half(unsigned short u) { __half_raw r; r.x = u; return __half(r); }
inline unsigned short __half_as_ushort(__half h) { __half_raw r = h; return r.x; }
