// Shared helpers of moecheck's CUDA kernels: dtype storage conversions (bit-exact, NaN
// payloads kept the way moe.DType.RoundFloat32 and x448/float16 keep them), runtime-dtype
// loads and stores, and the fault bits (gpu.Fault numbers, as in gpu/fault.go).
//
// Every kernel argument is 8 bytes (gorgonia.org/cu copies each argument as 8 bytes):
// pointers and long long scalars only.
#pragma once
#include <stdint.h>
#include <cuda_fp16.h>

typedef long long i64;
typedef unsigned long long u64;

enum { DT_BF16 = 0, DT_FP16 = 1, DT_FP32 = 2 };

// Fault bits: bit f of the flags argument is gpu.Fault f.
enum {
  F_CLAMP_SENTINEL = 1,
  F_MASK_AFTER_WEIGHT = 2,
  F_NO_MASK_UP_DGRAD = 3,
  F_NO_MASK_DOWN_DGRAD = 4,
  F_EMPTY_EXPERT_WGRAD = 5,
  F_HISTOGRAM_SENTINEL = 6,
  F_EXCLUSIVE_OFFSETS = 7,
  F_SENTINEL_WRAP = 8,
  F_COMBINE_IN_DTYPE = 9,
  F_ACCUM_IN_DTYPE = 10,
  F_GATE_UP_SWAPPED = 11,
  F_EP_NO_RANK_OFFSET = 12,
  F_LAST_TILE_DROPPED = 13,
  F_TAIL_STALE_UNMASKED = 14,
  F_NONDETERMINISTIC_SUM = 15,
  F_NEIGHBOUR_WEIGHTS = 16,
  F_ZERO_TOKEN_ROW = 17,
  F_CRASH = 18,
};
#define HAS(flags, f) ((((u64)(flags)) >> (f)) & 1ull)

// meta[] written by route_scan (int32):
//   META_REFF  mask boundary: rows >= it are the sentinel tail the masks zero
//   META_LASTE last expert whose GEMM group has rows (-1 if none)
//   META_FIRST first slot with a real (non-sentinel) id (INT_MAX if none)
//   META_R     offsets[E-1] as the path computed it
enum { META_REFF = 0, META_LASTE = 1, META_FIRST = 2, META_R = 3, META_N = 4 };

__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float(((uint32_t)h) << 16); }

__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  uint32_t b = __float_as_uint(f);
  if ((b & 0x7f800000u) == 0x7f800000u) {
    if (b & 0x007fffffu) return (uint16_t)(((b & 0xffff0000u) | 0x00400000u) >> 16);
    return (uint16_t)(b >> 16);
  }
  b += 0x7fffu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}

__device__ __forceinline__ float fp16_to_f32(uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
    return __uint_as_float(((uint32_t)(h & 0x8000u) << 16) | 0x7fc00000u | ((uint32_t)(h & 0x3ffu) << 13));
  return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ uint16_t f32_to_fp16(float f) {
  uint32_t b = __float_as_uint(f);
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu))
    return (uint16_t)(((b >> 16) & 0x8000u) | 0x7c00u | 0x200u | ((b & 0x7fffffu) >> 13));
  return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ float ldv(const void* p, i64 i, int dt) {
  if (dt == DT_FP32) return ((const float*)p)[i];
  uint16_t h = ((const uint16_t*)p)[i];
  return dt == DT_BF16 ? bf16_to_f32(h) : fp16_to_f32(h);
}

__device__ __forceinline__ void stv(void* p, i64 i, int dt, float v) {
  if (dt == DT_FP32) {
    ((float*)p)[i] = v;
  } else {
    ((uint16_t*)p)[i] = dt == DT_BF16 ? f32_to_bf16(v) : f32_to_fp16(v);
  }
}

// rnd rounds an fp32 value to the dtype (round to nearest even) and widens it back.
__device__ __forceinline__ float rnd(float v, int dt) {
  if (dt == DT_FP32) return v;
  return dt == DT_BF16 ? bf16_to_f32(f32_to_bf16(v)) : fp16_to_f32(f32_to_fp16(v));
}

__device__ __forceinline__ i64 gtid() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 gstride() { return (i64)gridDim.x * blockDim.x; }

// 8 consecutive 16-bit elements (one 16-byte vector) at element index i (a multiple of 8).
__device__ __forceinline__ void ld8(const void* p, i64 i, int dt, float* v) {
  uint4 u = *(const uint4*)((const uint16_t*)p + i);
  uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int q = 0; q < 4; q++) {
    uint16_t lo = (uint16_t)(w[q] & 0xffffu), hi = (uint16_t)(w[q] >> 16);
    v[2 * q] = dt == DT_BF16 ? bf16_to_f32(lo) : fp16_to_f32(lo);
    v[2 * q + 1] = dt == DT_BF16 ? bf16_to_f32(hi) : fp16_to_f32(hi);
  }
}

__device__ __forceinline__ void st8(void* p, i64 i, int dt, const float* v) {
  uint32_t w[4];
#pragma unroll
  for (int q = 0; q < 4; q++) {
    uint16_t lo = dt == DT_BF16 ? f32_to_bf16(v[2 * q]) : f32_to_fp16(v[2 * q]);
    uint16_t hi = dt == DT_BF16 ? f32_to_bf16(v[2 * q + 1]) : f32_to_fp16(v[2 * q + 1]);
    w[q] = (uint32_t)lo | ((uint32_t)hi << 16);
  }
  *(uint4*)((uint16_t*)p + i) = make_uint4(w[0], w[1], w[2], w[3]);
}
