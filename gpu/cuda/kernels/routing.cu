// Routing stage (docs/path.md steps 1-3): EP map, stable counting sort of the S ids by
// expert, per-expert counts over 0..E-1, int32 inclusive offsets, and the tile tables the
// grouped GEMMs use. Stable: ties keep slot order (one warp scatters each chunk in order).
#include "common.cuh"

#define RCHUNK 1024

// route_prepare: effective local id and routing weight of every slot.
// gids != 0: global ids (int64) are mapped to this rank: local iff lo <= g < lo+E.
extern "C" __global__ void route_prepare(const int* ids, const i64* gids, const void* w_in, i64 dt, i64 S,
                                         i64 E, i64 lo, i64 keep, i64 flags, int* eff_id, void* eff_w, int* meta) {
  if (HAS(flags, F_CRASH) && gtid() == 0) {
    // A real illegal address access (gpu.Crash): the context is lost for good.
    *(volatile int*)(uintptr_t)0x10 = 1;
  }
  for (i64 s = gtid(); s < S; s += gstride()) {
    float w = ldv(w_in, s, (int)dt);
    int id;
    if (gids) {
      i64 g = gids[s];
      i64 l = HAS(flags, F_EP_NO_RANK_OFFSET) ? 0 : lo;
      if (g >= l && g < l + E) {
        id = (int)(g - l);
      } else {
        id = (int)E;
        if (!keep) w = 0.0f;
      }
    } else {
      id = ids[s];
    }
    if (HAS(flags, F_CLAMP_SENTINEL) && id > E - 1) id = (int)(E - 1);
    eff_id[s] = id;
    stv(eff_w, s, (int)dt, w);
    if (id < E) atomicMin(&meta[META_FIRST], (int)s);
  }
}

// route_hist: per-chunk histograms hist[c][0..E] (bin E = sentinels). Dynamic smem (E+1)*4.
extern "C" __global__ void route_hist(const int* eff_id, i64 S, i64 E, int* hist) {
  extern __shared__ int sh[];
  for (int b = threadIdx.x; b <= E; b += blockDim.x) sh[b] = 0;
  __syncthreads();
  i64 c = blockIdx.x;
  i64 end = min((c + 1) * RCHUNK, S);
  for (i64 s = c * RCHUNK + threadIdx.x; s < end; s += blockDim.x) atomicAdd(&sh[eff_id[s]], 1);
  __syncthreads();
  for (int b = threadIdx.x; b <= E; b += blockDim.x) hist[c * (E + 1) + b] = sh[b];
}

// route_scan: one block. Turns hist into each chunk's first output row per bin, and writes
// counts, offsets (as the path computes them), goffs (GEMM groups), woffs (wgrad groups),
// tile tables for 128- and 64-row tiles, and meta.
extern "C" __global__ void route_scan(int* hist, i64 nchunks, i64 S, i64 E, i64 flags, int* counts, int* offs,
                                      int* goffs, int* woffs, int* tiles128, int* tiles64, int* meta) {
  extern __shared__ int tot[];  // E+1 totals, then E+1 starts
  int* start = tot + (E + 1);
  for (i64 b = threadIdx.x; b <= E; b += blockDim.x) {
    int run = 0;
    for (i64 c = 0; c < nchunks; c++) {
      int t = hist[c * (E + 1) + b];
      hist[c * (E + 1) + b] = run;
      run += t;
    }
    tot[b] = run;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int acc = 0;
    for (i64 b = 0; b <= E; b++) {
      start[b] = acc;
      acc += tot[b];
    }
    int cum = 0;
    for (i64 e = 0; e < E; e++) {
      int n = tot[e];
      if (e == E - 1 && HAS(flags, F_HISTOGRAM_SENTINEL)) n += tot[E];
      counts[e] = n;
      int before = cum;
      cum += n;
      int o = HAS(flags, F_EXCLUSIVE_OFFSETS) ? before : cum;
      offs[e] = o;
      goffs[e] = o;
      woffs[e] = o;
    }
    if (HAS(flags, F_SENTINEL_WRAP) || HAS(flags, F_TAIL_STALE_UNMASKED)) goffs[E - 1] = (int)S;
    if (HAS(flags, F_SENTINEL_WRAP)) woffs[E - 1] = (int)S;
    int t128 = 0, t64 = 0, laste = -1;
    for (i64 e = 0; e < E; e++) {
      int b = e == 0 ? 0 : goffs[e - 1];
      int n = goffs[e] - b;
      if (n < 0) n = 0;
      tiles128[e] = t128;
      tiles64[e] = t64;
      t128 += (n + 127) / 128;
      t64 += (n + 63) / 64;
      if (n > 0) laste = (int)e;
    }
    tiles128[E] = t128;
    tiles64[E] = t64;
    meta[META_REFF] = goffs[E - 1];
    meta[META_LASTE] = laste;
    meta[META_R] = offs[E - 1];
  }
  __syncthreads();
  for (i64 b = threadIdx.x; b <= E; b += blockDim.x) {
    int s0 = start[b];
    for (i64 c = 0; c < nchunks; c++) hist[c * (E + 1) + b] += s0;
  }
}

// route_scatter: one warp per chunk, slots in order: perm[row] = slot, inv[slot] = row,
// sorted[row] = id. Dynamic smem (E+1)*4 (the chunk's cursors).
extern "C" __global__ void route_scatter(const int* eff_id, const int* hist, i64 S, i64 E, int* perm, int* inv,
                                         int* sorted) {
  extern __shared__ int cur[];
  i64 c = blockIdx.x;
  for (int b = threadIdx.x; b <= E; b += 32) cur[b] = hist[c * (E + 1) + b];
  __syncwarp();
  unsigned lane = threadIdx.x;
  unsigned lt = (1u << lane) - 1u;
  i64 end = min((c + 1) * RCHUNK, S);
  for (i64 base = c * RCHUNK; base < end; base += 32) {
    i64 s = base + lane;
    int id = s < end ? eff_id[s] : -1;
    unsigned peers = __match_any_sync(0xffffffffu, id);
    int pos = 0;
    if (s < end) pos = cur[id] + __popc(peers & lt);
    __syncwarp();
    if (s < end && (peers & lt) == 0) cur[id] += __popc(peers);
    __syncwarp();
    if (s < end) {
      perm[pos] = (int)s;
      inv[s] = pos;
      sorted[pos] = id;
    }
  }
}
