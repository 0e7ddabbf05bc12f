// Memory-bound stages of the path (docs/path.md): poison fills, guard zones, gather with
// mask A, the masks, activations forward and backward (accurate expf, IEEE division, no
// contraction: __fmul_rn/__fadd_rn), routing-weight multiply, K-slot combine and the dX
// gather-sum (fp32, k in order), d_rw, d_h2, and the bias gradients by clamped id.
#include "common.cuh"

// ---- poison -------------------------------------------------------------------------

__device__ __forceinline__ u64 splitmix64(u64 x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ uint32_t max_finite_bits(int dt) {
  return dt == DT_BF16 ? 0x7f7fu : dt == DT_FP16 ? 0x7bffu : 0x7f7fffffu;
}

// huge_bits: gpu.PoisonValue(PoisonHuge): ±MaxFinite/2^(rnd&7), sign from rnd&8, as dtype bits.
__device__ __forceinline__ uint32_t huge_bits(int dt, u64 rnd) {
  uint32_t m = max_finite_bits(dt);
  uint32_t k = (uint32_t)(rnd & 7);
  uint32_t bits;
  if (dt == DT_FP32) {
    bits = m - (k << 23);
  } else if (dt == DT_BF16) {
    bits = m - (k << 7);
  } else {
    bits = m - (k << 10);  // 65504/2^k, k <= 7: still normal
  }
  if (rnd & 8) bits |= dt == DT_FP32 ? 0x80000000u : 0x8000u;
  return bits;
}

__device__ __forceinline__ void store_bits(void* p, i64 i, int dt, uint32_t b) {
  if (dt == DT_FP32) ((uint32_t*)p)[i] = b;
  else ((uint16_t*)p)[i] = (uint16_t)b;
}

// poison_range: elements [t, n) with stride of p filled per policy as gpu.Poison (0 zeros,
// 1 NaN, 2 +Inf, 3 -Inf, 4 huge, 5 stale (huge here), 6 signature). The element draw is
// gpu.SplitMix64(seed ^ buf<<56 + i).
__device__ __forceinline__ void poison_range(void* p, i64 n, int d, i64 policy, i64 buf, i64 seed, i64 t, i64 stride) {
  uint32_t c = 0;
  switch (policy) {
    case 1: c = d == DT_FP32 ? 0x7fc00000u : d == DT_BF16 ? 0x7fc0u : 0x7e00u; break;
    case 2: c = d == DT_FP32 ? 0x7f800000u : d == DT_BF16 ? 0x7f80u : 0x7c00u; break;
    case 3: c = d == DT_FP32 ? 0xff800000u : d == DT_BF16 ? 0xff80u : 0xfc00u; break;
    case 6: {
      uint32_t s = 0x7fc00000u | ((uint32_t)buf << 16);  // gpu.SignatureNaN
      c = d == DT_FP32 ? s : d == DT_BF16 ? (s >> 16) : (0x7c00u | 0x200u | ((s & 0x7fffffu) >> 13));
      break;
    }
  }
  u64 base = (u64)seed ^ ((u64)buf << 56);
  for (i64 i = t; i < n; i += stride) {
    uint32_t b = (policy == 4 || policy == 5) ? huge_bits(d, splitmix64(base + (u64)i)) : c;
    store_bits(p, i, d, b);
  }
}

// stale_range: a reused buffer keeps its previous values; non-finite ones become huge.
__device__ __forceinline__ void stale_range(void* p, i64 n, int d, i64 buf, i64 seed, i64 t, i64 stride) {
  u64 base = (u64)seed ^ ((u64)buf << 56);
  for (i64 i = t; i < n; i += stride) {
    float v = ldv(p, i, d);
    if (!isfinite(v)) store_bits(p, i, d, huge_bits(d, splitmix64(base + (u64)i)));
  }
}

// ---- guard zones ----------------------------------------------------------------------

__device__ __forceinline__ unsigned char guard_byte(u64 tag, i64 i) { return (unsigned char)(0xA5u ^ (tag * 29u) ^ (i * 7u)); }

// guard_check: bad[0] = min over damaged zones of (zone << 32 | first damaged byte).
// desc[3*g] = address, desc[3*g+1] = bytes, desc[3*g+2] = tag; one zone per g.
extern "C" __global__ void guard_check(const u64* desc, i64 nzones, u64* bad) {
  for (i64 g = blockIdx.x; g < nzones; g += gridDim.x) {
    const unsigned char* p = (const unsigned char*)desc[3 * g];
    i64 n = (i64)desc[3 * g + 1];
    for (i64 i = threadIdx.x; i < n; i += blockDim.x)
      if (p[i] != guard_byte(desc[3 * g + 2], i)) atomicMin(bad, ((u64)g << 32) | (u64)i);
  }
}

// ---- zero tails --------------------------------------------------------------------------

// zero_extent: *ext = max(*ext, 1 + the index of the last nonzero byte of p[0, n)), or
// unchanged when every byte is zero. p is 16-byte aligned; *ext starts at 0. A result's bytes
// past the extent are zero and need not be downloaded (gpu/cuda/path.go, zero tails). Each
// thread that found a nonzero byte publishes its last with one atomicMax (no warp shuffles,
// so that hostemu/prepare_emu.cpp runs it serially and checks it against a scalar scan).
extern "C" __global__ void zero_extent(const unsigned char* p, i64 n, u64* ext) {
  i64 nv = n >> 4;
  u64 best = 0;
  i64 stride = (i64)gridDim.x * blockDim.x;
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    uint4 v = ((const uint4*)p)[i];
    if (v.x | v.y | v.z | v.w) {
      int k = 15;
      while (p[16 * i + k] == 0) k--;
      best = (u64)(16 * i + k + 1);  // i grows: the thread's last find is its largest
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0)
    for (i64 i = nv << 4; i < n; i++)
      if (p[i] && (u64)(i + 1) > best) best = (u64)(i + 1);
  if (best) atomicMax(ext, best);
}

// ---- the fused prepare / pack launch ------------------------------------------------------

// Descriptor operations (gpu/cuda/stage.go op*).
enum { OP_POISON = 0, OP_STALE = 1, OP_FILL = 2, OP_GUARD = 3, OP_CHECK = 4, OP_COPY = 5 };

// copy_bytes: n bytes from s to d (both 16-byte aligned): 16-byte vectors, then the tail.
__device__ __forceinline__ void copy_bytes(unsigned char* d, const unsigned char* s, i64 n, i64 t, i64 stride) {
  i64 nv = n >> 4;
  for (i64 i = t; i < nv; i += stride) ((uint4*)d)[i] = ((const uint4*)s)[i];
  for (i64 i = (nv << 4) + t; i < n; i += stride) d[i] = s[i];
}

// fill_bytes: n bytes of d (16-byte aligned) set to v.
__device__ __forceinline__ void fill_bytes(unsigned char* d, unsigned char v, i64 n, i64 t, i64 stride) {
  uint32_t w = (uint32_t)v * 0x01010101u;
  uint4 q = make_uint4(w, w, w, w);
  i64 nv = n >> 4;
  for (i64 i = t; i < nv; i += stride) ((uint4*)d)[i] = q;
  for (i64 i = (nv << 4) + t; i < n; i += stride) d[i] = v;
}

// prepare_bufs: one launch for a run's preparation (poison fills, stale fixes, 0xFF fills,
// guard fills, the guard slots, inputs copied from the staging buffer) or its end (the guard
// check, results packed into the download staging buffer). desc holds nd descriptors of 8
// u64: op, dst, src, n, dt, arg, buf, first block; first blocks increase strictly and the
// blocks [first(d), first(d+1)) (the last: to gridDim.x) stride over descriptor d's units.
// Descriptors touch disjoint bytes (guard zones lie outside every buffer's data), so their
// order in the launch does not matter.
extern "C" __global__ void prepare_bufs(const u64* desc, i64 nd, i64 seed) {
  u64 bx = blockIdx.x;
  i64 lo = 0, hi = nd - 1;  // last descriptor whose first block <= bx
  while (lo < hi) {
    i64 m = (lo + hi + 1) >> 1;
    if (desc[8 * m + 7] <= bx) lo = m;
    else hi = m - 1;
  }
  const u64* q = desc + 8 * lo;
  u64 op = q[0];
  unsigned char* dst = (unsigned char*)q[1];
  const unsigned char* src = (const unsigned char*)q[2];
  i64 n = (i64)q[3], dt = (i64)q[4], arg = (i64)q[5], buf = (i64)q[6];
  u64 first = q[7];
  u64 end = lo + 1 < nd ? desc[8 * (lo + 1) + 7] : (u64)gridDim.x;
  i64 t = (i64)(bx - first) * blockDim.x + threadIdx.x;
  i64 stride = (i64)(end - first) * blockDim.x;
  switch (op) {
    case OP_POISON: poison_range(dst, n, (int)dt, arg, buf, seed, t, stride); break;
    case OP_STALE: stale_range(dst, n, (int)dt, buf, seed, t, stride); break;
    case OP_FILL: fill_bytes(dst, (unsigned char)arg, n, t, stride); break;
    case OP_COPY: copy_bytes(dst, src, n, t, stride); break;
    case OP_GUARD:
    case OP_CHECK: {
      const u64* zones = (const u64*)src;
      for (i64 u = t; u < n * arg; u += stride) {
        i64 z = u / arg, i = u - z * arg;
        unsigned char* p = (unsigned char*)zones[3 * z];
        unsigned char g = guard_byte(zones[3 * z + 2], i);
        if (op == OP_GUARD) p[i] = g;
        else if (p[i] != g) atomicMin((u64*)dst, ((u64)z << 32) | (u64)i);
      }
      break;
    }
  }
}

// ---- gather, masks ------------------------------------------------------------------------

// gather_rows: dst[i,:] = src[perm[i]/K,:] for rows i < limit, zeros for i >= limit, where
// limit = S without the mask, meta[META_REFF] with it (mask A fused into the gather).
extern "C" __global__ void gather_rows(const void* src, void* dst, const int* perm, const int* meta, i64 S, i64 K,
                                       i64 H, i64 dt, i64 mask) {
  i64 lim = mask ? (i64)meta[META_REFF] : S;
  i64 n = S * H;
  if (dt == DT_FP32) {
    const float* s = (const float*)src;
    float* d = (float*)dst;
    for (i64 x = gtid(); x < n; x += gstride()) {
      i64 i = x / H, h = x - i * H;
      d[x] = i < lim ? s[(i64)(perm[i] / K) * H + h] : 0.0f;
    }
  } else if ((H & 7) == 0) {  // 16-byte vectors of 8 halves
    const uint4* s = (const uint4*)src;
    uint4* d = (uint4*)dst;
    i64 hv = H >> 3;
    for (i64 x = gtid(); x < S * hv; x += gstride()) {
      i64 i = x / hv, h = x - i * hv;
      d[x] = i < lim ? s[(i64)(perm[i] / K) * hv + h] : make_uint4(0, 0, 0, 0);
    }
  } else {
    const uint16_t* s = (const uint16_t*)src;
    uint16_t* d = (uint16_t*)dst;
    for (i64 x = gtid(); x < n; x += gstride()) {
      i64 i = x / H, h = x - i * H;
      d[x] = i < lim ? s[(i64)(perm[i] / K) * H + h] : (uint16_t)0;
    }
  }
}

// mask_rows: zero rows [meta[META_REFF], S) of an S×W buffer (the GEMMs never write them).
extern "C" __global__ void mask_rows(void* p, const int* meta, i64 S, i64 W, i64 dt) {
  i64 r = meta[META_REFF];
  if (r >= S) return;
  i64 n = (S - r) * W;
  i64 off = r * W;
  for (i64 x = gtid(); x < n; x += gstride()) {
    if (dt == DT_FP32) ((float*)p)[off + x] = 0.0f;
    else ((uint16_t*)p)[off + x] = 0;
  }
}

// ---- activations ------------------------------------------------------------------------

// act_fwd: act[i,j] from h1[i, gate(j)], h1[i, up(j)], all S rows (docs/path.md step 6).
// kind 0 SwiGLU (gate j, up I+j), 1 gpt-oss (gate 2j, up 2j+1, clamps, alpha 1.702).
__device__ __forceinline__ float swiglu_f(float g, float u) {
  float s = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
  return __fmul_rn(s, u);
}

extern "C" __global__ void act_fwd(const void* h1, void* act, i64 S, i64 I, i64 kind, i64 swap, i64 dt) {
  int d = (int)dt;
  if (d != DT_FP32 && kind == 0 && (I & 7) == 0) {  // SwiGLU, 8 columns per thread
    i64 iv = I >> 3;
    for (i64 x = gtid(); x < S * iv; x += gstride()) {
      i64 i = x / iv, j = (x - i * iv) * 8;
      float g[8], u[8], a[8];
      ld8(h1, i * 2 * I + (swap ? I + j : j), d, g);
      ld8(h1, i * 2 * I + (swap ? j : I + j), d, u);
#pragma unroll
      for (int q = 0; q < 8; q++) a[q] = swiglu_f(g[q], u[q]);
      st8(act, i * I + j, d, a);
    }
    return;
  }
  for (i64 x = gtid(); x < S * I; x += gstride()) {
    i64 i = x / I, j = x - i * I;
    i64 gc = kind ? 2 * j : j, uc = kind ? 2 * j + 1 : I + j;
    if (swap) { i64 t = gc; gc = uc; uc = t; }
    float g = ldv(h1, i * 2 * I + gc, d), u = ldv(h1, i * 2 * I + uc, d);
    float a;
    if (kind == 0) {
      a = swiglu_f(g, u);
    } else {
      g = g > 7.0f ? 7.0f : g;  // keeps NaN (torch.clamp propagates it)
      u = u < -7.0f ? -7.0f : (u > 7.0f ? 7.0f : u);
      float t = __fdiv_rn(g, __fadd_rn(1.0f, expf(-__fmul_rn(1.702f, g))));
      a = __fmul_rn(__fadd_rn(u, 1.0f), t);
    }
    stv(act, x, d, a);
  }
}

// act_bwd: d_h1 from d_act and h1 (docs/path.md step 15), rows >= meta[REFF] zeroed when
// mask (mask B's backward, fused).
__device__ __forceinline__ void swiglu_b(float g, float u, float da, float& dg, float& du) {
  float sg = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)));
  float t = __fmul_rn(__fmul_rn(da, u), sg);
  dg = __fmul_rn(t, __fadd_rn(1.0f, __fmul_rn(g, __fsub_rn(1.0f, sg))));
  du = __fmul_rn(__fmul_rn(da, g), sg);
}

extern "C" __global__ void act_bwd(const void* h1, const void* dact, void* dh1, const int* meta, i64 S, i64 I,
                                   i64 kind, i64 swap, i64 dt, i64 mask) {
  int d = (int)dt;
  i64 lim = mask ? (i64)meta[META_REFF] : S;
  if (d != DT_FP32 && kind == 0 && (I & 7) == 0) {  // SwiGLU, 8 columns per thread
    i64 iv = I >> 3;
    for (i64 x = gtid(); x < S * iv; x += gstride()) {
      i64 i = x / iv, j = (x - i * iv) * 8;
      i64 gc = i * 2 * I + (swap ? I + j : j), uc = i * 2 * I + (swap ? j : I + j);
      float dg[8], du[8];
      if (i >= lim) {
#pragma unroll
        for (int q = 0; q < 8; q++) dg[q] = du[q] = 0.0f;
      } else {
        float g[8], u[8], da[8];
        ld8(h1, gc, d, g);
        ld8(h1, uc, d, u);
        ld8(dact, i * I + j, d, da);
#pragma unroll
        for (int q = 0; q < 8; q++) swiglu_b(g[q], u[q], da[q], dg[q], du[q]);
      }
      st8(dh1, gc, d, dg);
      st8(dh1, uc, d, du);
    }
    return;
  }
  for (i64 x = gtid(); x < S * I; x += gstride()) {
    i64 i = x / I, j = x - i * I;
    i64 gc = kind ? 2 * j : j, uc = kind ? 2 * j + 1 : I + j;
    if (swap) { i64 t = gc; gc = uc; uc = t; }
    float dg, du;
    if (i >= lim) {
      dg = 0.0f;
      du = 0.0f;
    } else {
      float g = ldv(h1, i * 2 * I + gc, d), u = ldv(h1, i * 2 * I + uc, d);
      float da = ldv(dact, i * I + j, d);
      if (kind == 0) {
        swiglu_b(g, u, da, dg, du);
      } else {
        // torch.clamp's backward selects: where(cond, grad, 0) (0 even for a NaN/Inf grad)
        bool ig = g <= 7.0f;
        bool iu = u >= -7.0f && u <= 7.0f;
        float gcl = g > 7.0f ? 7.0f : g;
        float ucl = u < -7.0f ? -7.0f : (u > 7.0f ? 7.0f : u);
        float sg = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-__fmul_rn(1.702f, gcl))));
        float inner = __fadd_rn(sg, __fmul_rn(__fmul_rn(__fmul_rn(1.702f, gcl), sg), __fsub_rn(1.0f, sg)));
        dg = ig ? __fmul_rn(__fmul_rn(da, __fadd_rn(ucl, 1.0f)), inner) : 0.0f;
        du = iu ? __fmul_rn(__fmul_rn(da, gcl), sg) : 0.0f;
      }
    }
    stv(dh1, i * 2 * I + gc, d, dg);
    stv(dh1, i * 2 * I + uc, d, du);
  }
}

// ---- routing-weight multiply, combine, scatter -------------------------------------------

// scale_rows: out[i,h] = round(in[i,h] * rw[perm[i]]) for i < lim, 0 for i >= lim, where
// lim = meta[REFF] when mask, else S. Used for o (mask only with mask-after-weight) and d_h2.
extern "C" __global__ void scale_rows(const void* in, const void* rw, const int* perm, void* out, const int* meta,
                                      i64 S, i64 H, i64 dt, i64 mask) {
  int d = (int)dt;
  i64 lim = mask ? (i64)meta[META_REFF] : S;
  if (d != DT_FP32 && (H & 7) == 0) {  // 8 elements per thread
    i64 hv = H >> 3;
    for (i64 x = gtid(); x < S * hv; x += gstride()) {
      i64 i = x / hv;
      float v[8];
      if (i < lim) {
        float w = ldv(rw, perm[i], d);
        ld8(in, x * 8, d, v);
#pragma unroll
        for (int q = 0; q < 8; q++) v[q] = __fmul_rn(v[q], w);
      } else {
#pragma unroll
        for (int q = 0; q < 8; q++) v[q] = 0.0f;
      }
      st8(out, x * 8, d, v);
    }
    return;
  }
  for (i64 x = gtid(); x < S * H; x += gstride()) {
    i64 i = x / H;
    float v = 0.0f;
    if (i < lim) v = __fmul_rn(ldv(in, x, d), ldv(rw, perm[i], d));
    stv(out, x, d, v);
  }
}

// combine: out[t,h] = round(sum over k of in[inv[t*K+k], h]) in fp32 from +0, k in order
// (rotated by (rot + t) mod K when rot >= 0: nondeterministic-sum, rot changes every run;
// rounded every step under combine-in-dtype);
// token zero_tok (>= 0 under zero-token-row) is left at +0.
extern "C" __global__ void combine(const void* in, const int* inv, void* out, const int* meta, i64 T, i64 K, i64 H,
                                   i64 dt, i64 in_dtype, i64 rot, i64 zero_row) {
  int d = (int)dt;
  i64 zt = -1;
  if (zero_row && meta[META_FIRST] != 0x7fffffff) zt = meta[META_FIRST] / K;
  if (d != DT_FP32 && (H & 7) == 0) {  // 8 columns per thread, same order per element
    i64 hv = H >> 3;
    for (i64 x = gtid(); x < T * hv; x += gstride()) {
      i64 t = x / hv, h = (x - t * hv) * 8;
      float acc[8];
#pragma unroll
      for (int q = 0; q < 8; q++) acc[q] = 0.0f;
      if (t != zt) {
        i64 r0 = rot >= 0 ? (rot + t) % K : 0;
        for (i64 kk = 0; kk < K; kk++) {
          i64 k = (kk + r0) % K;
          float v[8];
          ld8(in, (i64)inv[t * K + k] * H + h, d, v);
#pragma unroll
          for (int q = 0; q < 8; q++) {
            acc[q] = __fadd_rn(acc[q], v[q]);
            if (in_dtype) acc[q] = rnd(acc[q], d);
          }
        }
      }
      st8(out, x * 8, d, acc);
    }
    return;
  }
  for (i64 x = gtid(); x < T * H; x += gstride()) {
    i64 t = x / H, h = x - t * H;
    float acc = 0.0f;
    if (t != zt) {
      i64 r0 = rot >= 0 ? (rot + t) % K : 0;
      for (i64 kk = 0; kk < K; kk++) {
        i64 k = (kk + r0) % K;
        acc = __fadd_rn(acc, ldv(in, (i64)inv[t * K + k] * H + h, d));
        if (in_dtype) acc = rnd(acc, d);
      }
    }
    stv(out, x, d, acc);
  }
}

// row_dot: out[i] = round(sum_h a[i,h]*b[i,h]) in fp32, one warp per row (fixed order).
extern "C" __global__ void row_dot(const void* a, const void* b, void* out, i64 S, i64 H, i64 dt) {
  int d = (int)dt;
  i64 warp = gtid() >> 5;
  int lane = threadIdx.x & 31;
  i64 nw = gstride() >> 5;
  bool vec = d != DT_FP32 && (H & 7) == 0;
  for (i64 i = warp; i < S; i += nw) {
    float acc = 0.0f;
    if (vec) {  // lane sums its 8-element chunks lane, lane+32, ... in order
      for (i64 h = lane * 8; h < H; h += 256) {
        float va[8], vb[8];
        ld8(a, i * H + h, d, va);
        ld8(b, i * H + h, d, vb);
#pragma unroll
        for (int q = 0; q < 8; q++) acc = fmaf(va[q], vb[q], acc);
      }
    } else {
      for (i64 h = lane; h < H; h += 32) acc = fmaf(ldv(a, i * H + h, d), ldv(b, i * H + h, d), acc);
    }
    for (int o = 16; o > 0; o >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(0xffffffffu, acc, o));
    if (lane == 0) stv(out, i, d, acc);
  }
}

// ---- bias gradients by clamped id ------------------------------------------------------------

// first_row_ge: first sorted row whose clamped id is >= e (sorted ids ascending).
__device__ __forceinline__ i64 first_row_ge(const int* sorted, i64 S, i64 E, i64 e) {
  i64 lo = 0, hi = S;
  while (lo < hi) {
    i64 m = (lo + hi) >> 1;
    i64 id = sorted[m];
    if (id > E - 1) id = E - 1;
    if (id < e) lo = m + 1;
    else hi = m;
  }
  return lo;
}

// bias_partial: block (32 columns × 8 row lanes), grid (ceil(W/32), E, splits). Rows of
// expert e (clamped id) are cut into `splits` chunks; part[(z*E + e)*W + j] = fp32 sum.
extern "C" __global__ void bias_partial(const void* g, const int* sorted, float* part, i64 S, i64 W, i64 E,
                                        i64 dt) {
  __shared__ float red[8][33];
  int d = (int)dt;
  i64 e = blockIdx.y, z = blockIdx.z, splits = gridDim.z;
  i64 lo = first_row_ge(sorted, S, E, e);
  i64 hi = e == E - 1 ? S : first_row_ge(sorted, S, E, e + 1);
  i64 n = hi - lo;
  i64 chunk = (n + splits - 1) / splits;
  i64 r0 = lo + z * chunk, r1 = min(hi, r0 + chunk);
  i64 j = (i64)blockIdx.x * 32 + (threadIdx.x & 31);
  int rl = threadIdx.x >> 5;
  float acc = 0.0f;
  if (j < W)
    for (i64 r = r0 + rl; r < r1; r += 8) acc = __fadd_rn(acc, ldv(g, r * W + j, d));
  red[rl][threadIdx.x & 31] = acc;
  __syncthreads();
  if (rl == 0 && j < W) {
    float s = 0.0f;
    for (int q = 0; q < 8; q++) s = __fadd_rn(s, red[q][threadIdx.x]);
    part[(z * E + e) * W + j] = s;
  }
}

// bias_finish: db[e*W+j] = round(sum over z in order of part).
extern "C" __global__ void bias_finish(const float* part, void* db, i64 E, i64 W, i64 splits, i64 dt) {
  for (i64 x = gtid(); x < E * W; x += gstride()) {
    float s = 0.0f;
    for (i64 z = 0; z < splits; z++) s = __fadd_rn(s, part[z * E * W + x]);
    stv(db, x, (int)dt, s);
  }
}
