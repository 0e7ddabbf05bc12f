// Grouped GEMMs of the path (docs/path.md steps 5, 7, 13, 14, 16, 17).
//
// C[m][n] = sum_k A(m,k) * B(n,k), products of dtype values accumulated in fp32, then (fwd)
// + bias in fp32 and one rounding to the dtype.
//   grouped: rows m are sorted rows; group e (rows [goffs[e-1], goffs[e])) uses expert e's
//            weights; rows outside every group are never written.
//   wgrad:   per expert e, k runs over the rows [woffs[e-1], woffs[e]); an expert with no rows
//            gets exact zeros (unless empty-expert-wgrad).
// Tensor cores (bf16, fp16): mma.sync m16n8k16 with fp32 accumulation, 128×BN×32 tiles
// (BN = 128 or 256), 8 warps of 64×BN/4, a 4-stage cp.async pipeline, ldmatrix (.trans for
// M/N-major operands).
// Needs every leading dimension a multiple of 8 elements (16-byte chunks). Otherwise, for
// fp32, and under accum-in-dtype: a CUDA-core kernel with fmaf and any strides.
#include "common.cuh"

#define BM 128
#define BKT 32
#define STAGES 4
#define SK 40                  // K-major smem row (32 + 8 pad: conflict-free ldmatrix)
#define A_HALVES (BM * SK)     // 5120 >= BKT*(BM+8) (4352)

// Tile configuration by BN (128 or 256): 8 warps as 2 (m) × 4 (n), warp tile 64 × BN/4.
template <int BN_>
struct Tile {
  static constexpr int WN = BN_ / 4;   // warp tile columns
  static constexpr int NI = WN / 8;    // n8 mma tiles per warp
  static constexpr int SMN = BN_ + 8;  // N-major smem row
  static constexpr int B_HALVES = BN_ * SK > BKT * SMN ? BN_ * SK : BKT * SMN;
  static constexpr int STAGE = A_HALVES + B_HALVES;
  static constexpr int SMEM = STAGES * STAGE * 2;  // bytes: 81920 (128), 122880 (256)
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

template <int DT>
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, const uint32_t* b) {
  if (DT == DT_BF16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Operand description for one tile loop. K-major: element (r,k) at p[r*ld + k], r < rlim.
// Major (M- or N-major): element (r,k) at p[k*ld + r], r < rlim. k < klim in both.
struct Opnd {
  const uint16_t* p;
  i64 ld, rlim, klim;
};

// load_tile: ROWS × BKT tile of o at rows r0, k0 into s (K-major: [ROWS][SK]; else
// [BKT][ROWS+8]), 16-byte cp.async chunks, zero-filled outside the operand.
template <bool KMAJ, int ROWS>
__device__ __forceinline__ void load_tile(uint16_t* s, const Opnd& o, i64 r0, i64 k0, int tid) {
#pragma unroll
  for (int q = 0; q < ROWS / 64; q++) {
    int c = tid + q * 256;
    if (KMAJ) {
      int r = c >> 2, kc = (c & 3) * 8;
      bool v = (r0 + r) < o.rlim && (k0 + kc) < o.klim;
      const uint16_t* src = v ? o.p + (r0 + r) * o.ld + k0 + kc : o.p;
      cp_async16(smem_u32(s + r * SK + kc), src, v);
    } else {
      int k = c / (ROWS / 8), rc = (c % (ROWS / 8)) * 8;
      bool v = (k0 + k) < o.klim && (r0 + rc) < o.rlim;
      const uint16_t* src = v ? o.p + (k0 + k) * o.ld + r0 + rc : o.p;
      cp_async16(smem_u32(s + k * (ROWS + 8) + rc), src, v);
    }
  }
}

// tc_mainloop: acc (warp tile 64 × BN/4) over k in [0, klen).
template <int DT, bool AK, bool BK, int BN_>
__device__ __forceinline__ void tc_mainloop(float (&acc)[4][Tile<BN_>::NI][4], const Opnd& A, i64 m0, const Opnd& B,
                                            i64 n0, i64 klen, uint16_t* smem) {
  typedef Tile<BN_> TL;
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
  i64 nk = (klen + BKT - 1) / BKT;
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if (s < nk) {
      load_tile<AK, BM>(smem + s * TL::STAGE, A, m0, s * BKT, tid);
      load_tile<BK, BN_>(smem + s * TL::STAGE + A_HALVES, B, n0, s * BKT, tid);
    }
    cp_commit();
  }
  for (i64 kt = 0; kt < nk; kt++) {
    cp_wait<STAGES - 2>();
    __syncthreads();
    i64 nt = kt + STAGES - 1;
    if (nt < nk) {
      int st = (int)(nt % STAGES);
      load_tile<AK, BM>(smem + st * TL::STAGE, A, m0, nt * BKT, tid);
      load_tile<BK, BN_>(smem + st * TL::STAGE + A_HALVES, B, n0, nt * BKT, tid);
    }
    cp_commit();
    int st = (int)(kt % STAGES);
    const uint16_t* sa = smem + st * TL::STAGE;
    const uint16_t* sb = sa + A_HALVES;
#pragma unroll
    for (int kk = 0; kk < BKT / 16; kk++) {
      uint32_t af[4][4], bf[TL::NI][2];
#pragma unroll
      for (int mi = 0; mi < 4; mi++) {
        if (AK) {
          int m = wm + mi * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, k = kk * 16 + (lane >> 4) * 8;
          ldsm_x4(af[mi], smem_u32(sa + m * SK + k));
        } else {
          int k = kk * 16 + (lane & 7) + (lane >> 4) * 8, m = wm + mi * 16 + ((lane >> 3) & 1) * 8;
          ldsm_x4_t(af[mi], smem_u32(sa + k * (BM + 8) + m));
        }
      }
#pragma unroll
      for (int nj = 0; nj < TL::NI / 2; nj++) {
        uint32_t r[4];
        if (BK) {
          int n = wn + nj * 16 + (lane & 7) + (lane >> 4) * 8, k = kk * 16 + ((lane >> 3) & 1) * 8;
          ldsm_x4(r, smem_u32(sb + n * SK + k));
        } else {
          int k = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, n = wn + nj * 16 + (lane >> 4) * 8;
          ldsm_x4_t(r, smem_u32(sb + k * TL::SMN + n));
        }
        bf[2 * nj][0] = r[0];
        bf[2 * nj][1] = r[1];
        bf[2 * nj + 1][0] = r[2];
        bf[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < TL::NI; ni++) mma16816<DT>(acc[mi][ni], af[mi], bf[ni]);
    }
  }
  cp_wait<0>();
}

__device__ __forceinline__ uint32_t pack2(int dt, float a, float b) {
  uint16_t x = dt == DT_BF16 ? f32_to_bf16(a) : f32_to_fp16(a);
  uint16_t y = dt == DT_BF16 ? f32_to_bf16(b) : f32_to_fp16(b);
  return (uint32_t)x | ((uint32_t)y << 16);
}

// group_of_tile: expert e with tiles[e] <= t < tiles[e+1] (binary search; -1 if t is past the end).
__device__ __forceinline__ int group_of_tile(const int* tiles, i64 E, i64 t) {
  if (t >= tiles[E]) return -1;
  int lo = 0, hi = (int)E - 1;
  while (lo < hi) {
    int m = (lo + hi + 1) >> 1;
    if (tiles[m] <= t) lo = m;
    else hi = m - 1;
  }
  return lo;
}

// weight_expert: the expert whose weights group e uses (neighbour-weights moves the last one).
__device__ __forceinline__ i64 weight_expert(i64 e, i64 E, const int* meta, i64 flags) {
  if (HAS(flags, F_NEIGHBOUR_WEIGHTS) && e == meta[META_LASTE]) return (e - 1 + E) % E;
  return e;
}

// tc_grouped: out[row][n] (ldc = N) for rows of each group; A (S×Kd, K-major, lda = Kd),
// B expert e at b + we*bstride, K-major (ldb = Kd) or N-major (ldb = N).
template <int DT, bool BK, int BN_>
__device__ void tc_grouped(const uint16_t* a, const uint16_t* b, i64 bstride, const uint16_t* bias, uint16_t* out,
                           i64 N, i64 Kd, i64 E, const int* goffs, const int* tiles, const int* meta, i64 flags,
                           i64 drop_partial) {
  typedef Tile<BN_> TL;
  extern __shared__ __align__(16) uint16_t smem[];
  i64 ntn = (N + BN_ - 1) / BN_;
  i64 mt = blockIdx.x / ntn, nt = blockIdx.x - mt * ntn;
  int e = group_of_tile(tiles, E, mt);
  if (e < 0) return;
  i64 gb = e == 0 ? 0 : goffs[e - 1], ge = goffs[e];
  if (drop_partial) ge = gb + ((ge - gb) / 16) * 16;  // last-tile-dropped
  i64 m0 = gb + (mt - tiles[e]) * BM, n0 = nt * BN_;
  if (m0 >= ge) return;
  i64 we = weight_expert(e, E, meta, flags);
  Opnd A{a, Kd, ge, Kd};
  Opnd B{b + we * bstride, BK ? Kd : N, N, Kd};
  float acc[4][TL::NI][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < TL::NI; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
  tc_mainloop<DT, true, BK, BN_>(acc, A, m0, B, n0, Kd, smem);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
#pragma unroll
  for (int ni = 0; ni < TL::NI; ni++) {
    i64 col = n0 + wn + ni * 8 + 2 * (lane & 3);
    if (col >= N) continue;
    float b0 = 0.0f, b1 = 0.0f;
    if (bias) {
      b0 = DT == DT_BF16 ? bf16_to_f32(bias[e * N + col]) : fp16_to_f32(bias[e * N + col]);
      b1 = DT == DT_BF16 ? bf16_to_f32(bias[e * N + col + 1]) : fp16_to_f32(bias[e * N + col + 1]);
    }
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      i64 r = m0 + wm + mi * 16 + (lane >> 2);
      if (r < ge)
        *(uint32_t*)(out + r * N + col) = pack2(DT, __fadd_rn(acc[mi][ni][0], b0), __fadd_rn(acc[mi][ni][1], b1));
      if (r + 8 < ge)
        *(uint32_t*)(out + (r + 8) * N + col) =
            pack2(DT, __fadd_rn(acc[mi][ni][2], b0), __fadd_rn(acc[mi][ni][3], b1));
    }
  }
}

// tc_wgrad: out[e] (M×N row-major) = sum over rows i of expert e of a[i][m]*b[i][n]
// (A M-major with lda, B N-major with ldb). grid (mtiles*ntiles, E).
template <int DT, int BN_>
__device__ void tc_wgrad(const uint16_t* a, i64 lda, const uint16_t* b, i64 ldb, uint16_t* out, i64 M, i64 N,
                         const int* woffs, i64 flags) {
  typedef Tile<BN_> TL;
  extern __shared__ __align__(16) uint16_t smem[];
  i64 e = blockIdx.y;
  i64 lo = e == 0 ? 0 : woffs[e - 1], hi = woffs[e];
  if (hi < lo) hi = lo;
  if (hi == lo && HAS(flags, F_EMPTY_EXPERT_WGRAD)) return;
  i64 ntn = (N + BN_ - 1) / BN_;
  i64 mt = blockIdx.x / ntn, nt = blockIdx.x - mt * ntn;
  i64 m0 = mt * BM, n0 = nt * BN_;
  Opnd A{a + lo * lda, lda, M, hi - lo};
  Opnd B{b + lo * ldb, ldb, N, hi - lo};
  float acc[4][TL::NI][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < TL::NI; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
  tc_mainloop<DT, false, false, BN_>(acc, A, m0, B, n0, hi - lo, smem);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
  uint16_t* o = out + e * M * N;
#pragma unroll
  for (int ni = 0; ni < TL::NI; ni++) {
    i64 col = n0 + wn + ni * 8 + 2 * (lane & 3);
    if (col >= N) continue;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      i64 r = m0 + wm + mi * 16 + (lane >> 2);
      if (r < M) *(uint32_t*)(o + r * N + col) = pack2(DT, acc[mi][ni][0], acc[mi][ni][1]);
      if (r + 8 < M) *(uint32_t*)(o + (r + 8) * N + col) = pack2(DT, acc[mi][ni][2], acc[mi][ni][3]);
    }
  }
}

#define GROUPED_ARGS                                                                                         \
  const uint16_t *a, const uint16_t *b, i64 bstride, const uint16_t *bias, uint16_t *out, i64 N, i64 Kd, i64 E, \
      const int *goffs, const int *tiles, const int *meta, i64 flags, i64 drop_partial
#define GROUPED_PASS a, b, bstride, bias, out, N, Kd, E, goffs, tiles, meta, flags, drop_partial
#define WGRAD_ARGS \
  const uint16_t *a, i64 lda, const uint16_t *b, i64 ldb, uint16_t *out, i64 M, i64 N, const int *woffs, i64 flags
#define WGRAD_PASS a, lda, b, ldb, out, M, N, woffs, flags

// Entry points: tc_grouped_<dtype>_<bk|bn>_n<BN>, tc_wgrad_<dtype>_n<BN>. BN = 256 runs one
// CTA of 8 warps per SM (warp tile 64×64); BN = 128 two (warp tile 64×32).
#define TC_ENTRIES(DTN, DTV)                                                                                    \
  extern "C" __global__ void __launch_bounds__(256, 2) tc_grouped_##DTN##_bk_n128(GROUPED_ARGS) {             \
    tc_grouped<DTV, true, 128>(GROUPED_PASS);                                                                   \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 2) tc_grouped_##DTN##_bn_n128(GROUPED_ARGS) {             \
    tc_grouped<DTV, false, 128>(GROUPED_PASS);                                                                  \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_grouped_##DTN##_bk_n256(GROUPED_ARGS) {             \
    tc_grouped<DTV, true, 256>(GROUPED_PASS);                                                                   \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_grouped_##DTN##_bn_n256(GROUPED_ARGS) {             \
    tc_grouped<DTV, false, 256>(GROUPED_PASS);                                                                  \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 2) tc_wgrad_##DTN##_n128(WGRAD_ARGS) {                     \
    tc_wgrad<DTV, 128>(WGRAD_PASS);                                                                             \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_wgrad_##DTN##_n256(WGRAD_ARGS) { tc_wgrad<DTV, 256>(WGRAD_PASS); }

TC_ENTRIES(bf16, DT_BF16)
TC_ENTRIES(fp16, DT_FP16)

// ---- 128×256×64 tiles, 3 stages, register double-buffered fragments -------------------------
// Halves the barriers per FLOP of the 32-deep tiles and overlaps each k16 step's ldmatrix with
// the previous step's mma. One CTA of 8 warps per SM (warp tile 64×64).

#define BK2 64
#define SK2 72  // K-major smem row (64 + 8 pad: 144-byte rows, conflict-free ldmatrix)
#define STAGES2 3

template <int BN_>
struct Tile2 {
  static constexpr int WN = BN_ / 4;
  static constexpr int NI = WN / 8;
  static constexpr int SMNA = BM + 8;
  static constexpr int SMNB = BN_ + 8;
  static constexpr int A_H = BM * SK2 > BK2 * SMNA ? BM * SK2 : BK2 * SMNA;
  static constexpr int B_H = BN_ * SK2 > BK2 * SMNB ? BN_ * SK2 : BK2 * SMNB;
  static constexpr int STAGE = A_H + B_H;
  static constexpr int SMEM = STAGES2 * STAGE * 2;  // bytes: 165888 for BN = 256
};

template <bool KMAJ, int ROWS>
__device__ __forceinline__ void load_tile2(uint16_t* s, const Opnd& o, i64 r0, i64 k0, int tid) {
#pragma unroll
  for (int q = 0; q < ROWS / 32; q++) {
    int c = tid + q * 256;
    if (KMAJ) {
      int r = c >> 3, kc = (c & 7) * 8;
      bool v = (r0 + r) < o.rlim && (k0 + kc) < o.klim;
      const uint16_t* src = v ? o.p + (r0 + r) * o.ld + k0 + kc : o.p;
      cp_async16(smem_u32(s + r * SK2 + kc), src, v);
    } else {
      int k = c / (ROWS / 8), rc = (c % (ROWS / 8)) * 8;
      bool v = (k0 + k) < o.klim && (r0 + rc) < o.rlim;
      const uint16_t* src = v ? o.p + (k0 + k) * o.ld + r0 + rc : o.p;
      cp_async16(smem_u32(s + k * (ROWS + 8) + rc), src, v);
    }
  }
}

template <bool AK, bool BK, int BN_>
__device__ __forceinline__ void load_frags2(uint32_t (&af)[4][4], uint32_t (&bf)[Tile2<BN_>::NI][2],
                                            const uint16_t* sa, const uint16_t* sb, int kk, int lane, int wm,
                                            int wn) {
  typedef Tile2<BN_> TL;
#pragma unroll
  for (int mi = 0; mi < 4; mi++) {
    if (AK) {
      int m = wm + mi * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, k = kk * 16 + (lane >> 4) * 8;
      ldsm_x4(af[mi], smem_u32(sa + m * SK2 + k));
    } else {
      int k = kk * 16 + (lane & 7) + (lane >> 4) * 8, m = wm + mi * 16 + ((lane >> 3) & 1) * 8;
      ldsm_x4_t(af[mi], smem_u32(sa + k * TL::SMNA + m));
    }
  }
#pragma unroll
  for (int nj = 0; nj < TL::NI / 2; nj++) {
    uint32_t r[4];
    if (BK) {
      int n = wn + nj * 16 + (lane & 7) + (lane >> 4) * 8, k = kk * 16 + ((lane >> 3) & 1) * 8;
      ldsm_x4(r, smem_u32(sb + n * SK2 + k));
    } else {
      int k = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, n = wn + nj * 16 + (lane >> 4) * 8;
      ldsm_x4_t(r, smem_u32(sb + k * TL::SMNB + n));
    }
    bf[2 * nj][0] = r[0];
    bf[2 * nj][1] = r[1];
    bf[2 * nj + 1][0] = r[2];
    bf[2 * nj + 1][1] = r[3];
  }
}

template <int DT, bool AK, bool BK, int BN_>
__device__ __forceinline__ void tc_mainloop2(float (&acc)[4][Tile2<BN_>::NI][4], const Opnd& A, i64 m0,
                                             const Opnd& B, i64 n0, i64 klen, uint16_t* smem) {
  typedef Tile2<BN_> TL;
  int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
  i64 nk = (klen + BK2 - 1) / BK2;
#pragma unroll
  for (int s = 0; s < STAGES2 - 1; s++) {
    if (s < nk) {
      load_tile2<AK, BM>(smem + s * TL::STAGE, A, m0, s * BK2, tid);
      load_tile2<BK, BN_>(smem + s * TL::STAGE + TL::A_H, B, n0, s * BK2, tid);
    }
    cp_commit();
  }
  uint32_t af[2][4][4], bf[2][TL::NI][2];
  for (i64 kt = 0; kt < nk; kt++) {
    cp_wait<STAGES2 - 2>();
    __syncthreads();
    i64 nt = kt + STAGES2 - 1;
    if (nt < nk) {
      int st = (int)(nt % STAGES2);
      load_tile2<AK, BM>(smem + st * TL::STAGE, A, m0, nt * BK2, tid);
      load_tile2<BK, BN_>(smem + st * TL::STAGE + TL::A_H, B, n0, nt * BK2, tid);
    }
    cp_commit();
    const uint16_t* sa = smem + (int)(kt % STAGES2) * TL::STAGE;
    const uint16_t* sb = sa + TL::A_H;
    load_frags2<AK, BK, BN_>(af[0], bf[0], sa, sb, 0, lane, wm, wn);
#pragma unroll
    for (int kk = 0; kk < BK2 / 16; kk++) {
      if (kk + 1 < BK2 / 16) load_frags2<AK, BK, BN_>(af[(kk + 1) & 1], bf[(kk + 1) & 1], sa, sb, kk + 1, lane, wm, wn);
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < TL::NI; ni++) mma16816<DT>(acc[mi][ni], af[kk & 1][mi], bf[kk & 1][ni]);
    }
  }
  cp_wait<0>();
}

template <int DT, bool BK, int BN_>
__device__ void tc_grouped2(const uint16_t* a, const uint16_t* b, i64 bstride, const uint16_t* bias, uint16_t* out,
                            i64 N, i64 Kd, i64 E, const int* goffs, const int* tiles, const int* meta, i64 flags,
                            i64 drop_partial) {
  typedef Tile2<BN_> TL;
  extern __shared__ __align__(16) uint16_t smem[];
  i64 ntn = (N + BN_ - 1) / BN_;
  i64 mt = blockIdx.x / ntn, nt = blockIdx.x - mt * ntn;
  int e = group_of_tile(tiles, E, mt);
  if (e < 0) return;
  i64 gb = e == 0 ? 0 : goffs[e - 1], ge = goffs[e];
  if (drop_partial) ge = gb + ((ge - gb) / 16) * 16;
  i64 m0 = gb + (mt - tiles[e]) * BM, n0 = nt * BN_;
  if (m0 >= ge) return;
  i64 we = weight_expert(e, E, meta, flags);
  Opnd A{a, Kd, ge, Kd};
  Opnd B{b + we * bstride, BK ? Kd : N, N, Kd};
  float acc[4][TL::NI][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < TL::NI; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
  tc_mainloop2<DT, true, BK, BN_>(acc, A, m0, B, n0, Kd, smem);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
#pragma unroll
  for (int ni = 0; ni < TL::NI; ni++) {
    i64 col = n0 + wn + ni * 8 + 2 * (lane & 3);
    if (col >= N) continue;
    float b0 = 0.0f, b1 = 0.0f;
    if (bias) {
      b0 = DT == DT_BF16 ? bf16_to_f32(bias[e * N + col]) : fp16_to_f32(bias[e * N + col]);
      b1 = DT == DT_BF16 ? bf16_to_f32(bias[e * N + col + 1]) : fp16_to_f32(bias[e * N + col + 1]);
    }
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      i64 r = m0 + wm + mi * 16 + (lane >> 2);
      if (r < ge)
        *(uint32_t*)(out + r * N + col) = pack2(DT, __fadd_rn(acc[mi][ni][0], b0), __fadd_rn(acc[mi][ni][1], b1));
      if (r + 8 < ge)
        *(uint32_t*)(out + (r + 8) * N + col) =
            pack2(DT, __fadd_rn(acc[mi][ni][2], b0), __fadd_rn(acc[mi][ni][3], b1));
    }
  }
}

template <int DT, int BN_>
__device__ void tc_wgrad2(const uint16_t* a, i64 lda, const uint16_t* b, i64 ldb, uint16_t* out, i64 M, i64 N,
                          const int* woffs, i64 flags) {
  typedef Tile2<BN_> TL;
  extern __shared__ __align__(16) uint16_t smem[];
  i64 e = blockIdx.y;
  i64 lo = e == 0 ? 0 : woffs[e - 1], hi = woffs[e];
  if (hi < lo) hi = lo;
  if (hi == lo && HAS(flags, F_EMPTY_EXPERT_WGRAD)) return;
  i64 ntn = (N + BN_ - 1) / BN_;
  i64 mt = blockIdx.x / ntn, nt = blockIdx.x - mt * ntn;
  i64 m0 = mt * BM, n0 = nt * BN_;
  Opnd A{a + lo * lda, lda, M, hi - lo};
  Opnd B{b + lo * ldb, ldb, N, hi - lo};
  float acc[4][TL::NI][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < TL::NI; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
  tc_mainloop2<DT, false, false, BN_>(acc, A, m0, B, n0, hi - lo, smem);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int wm = (warp & 1) * 64, wn = (warp >> 1) * TL::WN;
  uint16_t* o = out + e * M * N;
#pragma unroll
  for (int ni = 0; ni < TL::NI; ni++) {
    i64 col = n0 + wn + ni * 8 + 2 * (lane & 3);
    if (col >= N) continue;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
      i64 r = m0 + wm + mi * 16 + (lane >> 2);
      if (r < M) *(uint32_t*)(o + r * N + col) = pack2(DT, acc[mi][ni][0], acc[mi][ni][1]);
      if (r + 8 < M) *(uint32_t*)(o + (r + 8) * N + col) = pack2(DT, acc[mi][ni][2], acc[mi][ni][3]);
    }
  }
}

// Entry points: tc_grouped_<dtype>_<bk|bn>_n256k64, tc_wgrad_<dtype>_n256k64.
#define TC2_ENTRIES(DTN, DTV)                                                                                   \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_grouped_##DTN##_bk_n256k64(GROUPED_ARGS) {          \
    tc_grouped2<DTV, true, 256>(GROUPED_PASS);                                                                  \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_grouped_##DTN##_bn_n256k64(GROUPED_ARGS) {          \
    tc_grouped2<DTV, false, 256>(GROUPED_PASS);                                                                 \
  }                                                                                                             \
  extern "C" __global__ void __launch_bounds__(256, 1) tc_wgrad_##DTN##_n256k64(WGRAD_ARGS) {                  \
    tc_wgrad2<DTV, 256>(WGRAD_PASS);                                                                            \
  }

TC2_ENTRIES(bf16, DT_BF16)
TC2_ENTRIES(fp16, DT_FP16)

// ---- CUDA-core fallback: any strides, any dtype, optional rounding at every step ----------

#define SB 64
#define SKB 16

// simt_gemm: mode 0 grouped (tiles of 64 rows from tiles64, as tc_grouped), mode 1 wgrad.
//   A(m,k) = a[(abase + m)*sam + (kbase + k)*sak] ... see the two modes below.
//   grouped: A(m,k) = a[m*sam + k*sak] with m a sorted row; B(n,k) = b[we*bstride + n*sbn + k*sbk];
//            out[m*N + n] (+ bias[e*N + n]).
//   wgrad:   A(m,k) = a[(lo+k)*sak + m*sam], B(n,k) = b[(lo+k)*sbk + n*sbn], out[e*M*N + m*N + n].
extern "C" __global__ void __launch_bounds__(256) simt_gemm(
    const void* a, i64 sam, i64 sak, const void* b, i64 sbn, i64 sbk, i64 bstride, const void* bias, void* out,
    i64 M, i64 N, i64 Kd, i64 E, const int* offs, const int* tiles, const int* meta, i64 flags, i64 mode, i64 dt,
    i64 accum_round, i64 drop_partial) {
  __shared__ float As[SKB][SB + 1], Bs[SKB][SB + 1];
  int d = (int)dt;
  i64 ntn = (N + SB - 1) / SB;
  i64 mt = blockIdx.x / ntn, nt = blockIdx.x - mt * ntn;
  i64 e, m0, mlim, klo, klen, we = 0;
  if (mode == 0) {
    int g = group_of_tile(tiles, E, mt);
    if (g < 0) return;
    e = g;
    i64 gb = e == 0 ? 0 : offs[e - 1], ge = offs[e];
    if (drop_partial) ge = gb + ((ge - gb) / 16) * 16;
    m0 = gb + (mt - tiles[e]) * SB;
    if (m0 >= ge) return;
    mlim = ge;
    klo = 0;
    klen = Kd;
    we = weight_expert(e, E, meta, flags);
  } else {
    e = blockIdx.y;
    i64 lo = e == 0 ? 0 : offs[e - 1], hi = offs[e];
    if (hi < lo) hi = lo;
    if (hi == lo && HAS(flags, F_EMPTY_EXPERT_WGRAD)) return;
    m0 = mt * SB;
    mlim = M;
    klo = lo;
    klen = hi - lo;
  }
  i64 n0 = nt * SB;
  int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  for (i64 k0 = 0; k0 < klen; k0 += SKB) {
    for (int q = threadIdx.x; q < SKB * SB; q += 256) {
      int kk = q / SB, r = q - kk * SB;
      i64 k = k0 + kk;
      float av = 0.0f, bv = 0.0f;
      if (k < klen) {
        i64 m = m0 + r, n = n0 + r;
        if (m < mlim) av = ldv(a, mode == 0 ? m * sam + k * sak : (klo + k) * sak + m * sam, d);
        if (n < N) bv = ldv(b, mode == 0 ? we * bstride + n * sbn + k * sbk : (klo + k) * sbk + n * sbn, d);
      }
      As[kk][r] = av;
      Bs[kk][r] = bv;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SKB; kk++) {
      if (k0 + kk >= klen) break;
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          float v = fmaf(As[kk][ty * 4 + i], Bs[kk][tx * 4 + j], acc[i][j]);
          acc[i][j] = accum_round ? rnd(v, d) : v;
        }
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++) {
    i64 m = m0 + ty * 4 + i;
    if (m >= mlim) continue;
    for (int j = 0; j < 4; j++) {
      i64 n = n0 + tx * 4 + j;
      if (n >= N) continue;
      float v = acc[i][j];
      if (mode == 0) {
        if (bias) v = __fadd_rn(v, ldv(bias, e * N + n, d));
        stv(out, m * N + n, d, v);
      } else {
        stv(out, e * M * N + m * N + n, d, v);
      }
    }
  }
}
