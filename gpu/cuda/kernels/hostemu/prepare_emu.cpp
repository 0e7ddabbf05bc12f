// prepare_emu: runs prepare_bufs (../elementwise.cu) on the CPU (prelude.h) and checks it
// byte for byte against the kernels it replaced (poison_fill, stale_fix, guard_fill: their
// source, as of commit dbb8ef3, is below as the reference) and against memset/memcpy: every
// dtype and poison policy, stale fixes over NaN/Inf-rich contents, 0xFF fills and copies of
// sizes around the 16-byte vectors and the block strides, every guard zone, all in one
// launch as a run's preparation is, compared over whole allocations (guards included, so a
// stray write shows); then the end-of-run guard check against guard_check, undamaged and
// damaged; and zero_extent (the zero tails) against a scalar scan. Descriptors are encoded as
// gpu/cuda/stage.go encodeDescs does.
// Build and run: scripts/kernel-emu.sh (make kernel-emu). Exit status 0: all equal.
#include "prelude.h"
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#include <random>
dim3e blockIdx, threadIdx, blockDim, gridDim;
#include "../elementwise.cu"

// ---- reference: the kernels prepare_bufs replaced (commit dbb8ef3) ----
// poison_fill: policy as gpu.Poison (0 zeros, 1 NaN, 2 +Inf, 3 -Inf, 4 huge, 5 stale (huge
// here), 6 signature). The element draw is gpu.SplitMix64(seed ^ buf<<56 + i).
extern "C" __global__ void old_poison_fill(void* p, i64 n, i64 dt, i64 policy, i64 buf, i64 seed) {
  int d = (int)dt;
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
  for (i64 i = gtid(); i < n; i += gstride()) {
    uint32_t b = (policy == 4 || policy == 5) ? huge_bits(d, splitmix64(base + (u64)i)) : c;
    store_bits(p, i, d, b);
  }
}

// stale_fix: a reused buffer keeps its previous values; non-finite ones become huge.
extern "C" __global__ void old_stale_fix(void* p, i64 n, i64 dt, i64 buf, i64 seed) {
  int d = (int)dt;
  u64 base = (u64)seed ^ ((u64)buf << 56);
  for (i64 i = gtid(); i < n; i += gstride()) {
    float v = ldv(p, i, d);
    if (!isfinite(v)) store_bits(p, i, d, huge_bits(d, splitmix64(base + (u64)i)));
  }
}



// guard_fill: desc[3*g] = address, desc[3*g+1] = bytes, desc[3*g+2] = tag; one zone per g.
extern "C" __global__ void old_guard_fill(const u64* desc, i64 nzones) {
  for (i64 g = blockIdx.x; g < nzones; g += gridDim.x) {
    unsigned char* p = (unsigned char*)desc[3 * g];
    i64 n = (i64)desc[3 * g + 1];
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) p[i] = guard_byte(desc[3 * g + 2], i);
  }
}

// ---- end of reference ----

template <class F> void launch(unsigned grid, unsigned block, F f) {
  gridDim = {grid, 1, 1}; blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; b++)
    for (unsigned t = 0; t < block; t++) { blockIdx = {b, 0, 0}; threadIdx = {t, 0, 0}; f(); }
}

struct Buf { unsigned char* base; i64 cap, n; unsigned char* data; };
Buf mk(i64 n) { i64 c = (std::max<i64>(n,1) + 255) & ~255LL; Buf b; b.base = (unsigned char*)aligned_alloc(256, c + 512); b.cap = c; b.n = n; b.data = b.base + 256; return b; }

struct Desc { u64 op, dst, src; i64 n, dt, arg, buf; };
i64 units(const Desc& d) { if (d.op == OP_FILL || d.op == OP_COPY) return (d.n + 15) / 16; if (d.op == OP_GUARD || d.op == OP_CHECK) return d.n * d.arg; return d.n; }
i64 blocks(const Desc& d) { return std::max<i64>(1, std::min<i64>(1024, (units(d) + 255) / 256)); }
// encode like gpu/cuda/stage.go encodeDescs; returns grid
i64 encode(std::vector<u64>& w, const std::vector<Desc>& ds) {
  w.clear(); i64 first = 0;
  for (auto& d : ds) { u64 v[8] = {d.op, d.dst, d.src, (u64)d.n, (u64)d.dt, (u64)d.arg, (u64)d.buf, (u64)first}; w.insert(w.end(), v, v + 8); first += blocks(d); }
  return first;
}
void run_new(const std::vector<Desc>& ds, i64 seed) {
  std::vector<u64> w; i64 g = encode(w, ds);
  launch((unsigned)g, 256, [&] { prepare_bufs(w.data(), (i64)ds.size(), seed); });
}
int fails = 0;
void cmp(const char* what, const unsigned char* a, const unsigned char* b, i64 n) {
  for (i64 i = 0; i < n; i++) if (a[i] != b[i]) { printf("FAIL %s: byte %lld: %02x vs %02x\n", what, (long long)i, a[i], b[i]); fails++; return; }
}

int main() {
  std::mt19937_64 rng(7);
  // 1. poison and stale, every dtype and policy, sizes around vector/stride edges, all in ONE launch each side.
  std::vector<Buf> olds, news; std::vector<Desc> ds;
  i64 sizes[] = {0, 1, 7, 8, 255, 256, 257, 1000, 262143, 262145, 300000};
  i64 seed = (i64)0x1234567890abcdefULL;
  int k = 0;
  for (int dt = 0; dt < 3; dt++) for (int pol = 0; pol <= 7; pol++) for (i64 n : sizes) {
    if (n > 1000 && (k++ % 5)) continue;
    i64 es = dt == 2 ? 4 : 2;
    Buf a = mk(n * es), b = mk(n * es);
    // random previous contents with some NaN/Inf patterns (stale)
    for (i64 i = 0; i < a.cap + 512; i++) a.base[i] = (unsigned char)rng();
    for (i64 i = 0; i < n; i++) if (rng() % 4 == 0) { if (es == 2) { uint16_t v = (rng()&1) ? 0x7f80 : 0xffc1; if (dt == 1) v = (rng()&1) ? 0x7c00 : 0xfe01; memcpy(a.data + 2*i, &v, 2);} else { uint32_t v = (rng()&1) ? 0x7f800000u : 0xffc00001u; memcpy(a.data + 4*i, &v, 4);} }
    memcpy(b.base, a.base, a.cap + 512);
    i64 bufid = 1 + (k % 17);
    i64 g = std::max<i64>(1, std::min<i64>(16384, (n + 255) / 256));
    if (pol == 7) {  // stale
      launch((unsigned)g, 256, [&] { old_stale_fix(a.data, n, dt, bufid, seed); });
      ds.push_back({OP_STALE, (u64)b.data, 0, n, dt, 4, bufid});
    } else {
      launch((unsigned)g, 256, [&] { old_poison_fill(a.data, n, dt, pol, bufid, seed); });
      ds.push_back({OP_POISON, (u64)b.data, 0, n, dt, pol, bufid});
    }
    olds.push_back(a); news.push_back(b);
  }
  // 2. 0xff fills and copies
  std::vector<std::pair<Buf, Buf>> fills, copies; std::vector<unsigned char*> srcs;
  for (i64 n : sizes) {
    Buf a = mk(n), b = mk(n); memset(a.base, 0x11, a.cap + 512); memset(b.base, 0x11, b.cap + 512);
    memset(a.data, 0xff, n); ds.push_back({OP_FILL, (u64)b.data, 0, n, 0, 0xff, 0}); fills.push_back({a, b});
    Buf c = mk(n), d = mk(n); memset(c.base, 0x22, c.cap + 512); memset(d.base, 0x22, d.cap + 512);
    unsigned char* s = (unsigned char*)aligned_alloc(16, ((n + 15) & ~15) + 16);
    for (i64 i = 0; i < n; i++) s[i] = (unsigned char)rng();
    memcpy(c.data, s, n); ds.push_back({OP_COPY, (u64)d.data, (u64)s, n, 0, 0, 0}); copies.push_back({c, d}); srcs.push_back(s);
  }
  // 3. guard zones of every buffer above (old guard_fill vs OP_GUARD)
  std::vector<u64> za, zb;
  auto addz = [&](std::vector<u64>& z, Buf& b) { i64 i = (i64)z.size() / 6; u64 v[6] = {(u64)b.base, 256, (u64)(2*i), (u64)(b.data + b.n), 256, (u64)(2*i+1)}; z.insert(z.end(), v, v + 6); };
  for (size_t i = 0; i < olds.size(); i++) { addz(za, olds[i]); addz(zb, news[i]); }
  i64 nz = (i64)za.size() / 3;
  launch((unsigned)std::min<i64>(nz, 1024), 256, [&] { old_guard_fill(za.data(), nz); });
  ds.push_back({OP_GUARD, 0, (u64)zb.data(), nz, 0, 256, 0});
  run_new(ds, seed);
  for (size_t i = 0; i < olds.size(); i++) cmp("poison/stale/guard (whole allocation)", olds[i].base, news[i].base, olds[i].cap + 512);
  for (auto& p : fills) cmp("fill (whole allocation)", p.first.base, p.second.base, p.first.cap + 512);
  for (auto& p : copies) cmp("copy (whole allocation)", p.first.base, p.second.base, p.first.cap + 512);
  // 4. check: undamaged -> all ones; damage two zones -> min(zone<<32|byte), as old guard_check.
  for (int damage = 0; damage < 2; damage++) {
    if (damage) { news[3].data[news[3].n + 12] ^= 0x5a; olds[3].data[olds[3].n + 12] ^= 0x5a; news[9].base[200] ^= 1; olds[9].base[200] ^= 1; }
    u64 slot_old = ~0ull, slot_new[2] = {~0ull, ~0ull};
    launch((unsigned)std::min<i64>(nz, 1024), 256, [&] { guard_check(za.data(), nz, &slot_old); });
    std::vector<Desc> pk = {{OP_CHECK, (u64)&slot_new[1], (u64)zb.data(), nz, 0, 256, 0}};
    run_new(pk, seed);
    printf("check (damage %d): old %016llx new %016llx\n", damage, slot_old, slot_new[1]);
    if (slot_old != slot_new[1] || slot_new[0] != ~0ull) { printf("FAIL check\n"); fails++; }
    if (damage && slot_new[1] != ((u64)(2*3+1) << 32 | 12)) { printf("FAIL check: want zone 7 byte 12\n"); fails++; }
  }
  // 4. zero_extent (the zero tails' extent, gpu/cuda/path.go) against a scalar scan: sizes
  // around the 16-byte vectors and the grid stride, the last nonzero byte anywhere (none,
  // first, in a vector, in the tail past the vectors, the very last), several blocks.
  int zx = 0;
  for (i64 n : {0LL, 1LL, 15LL, 16LL, 17LL, 4096LL, 4111LL, 65536LL, 70001LL}) {
    for (i64 at : {-1LL, 0LL, n / 3, n - 17, n - 16, n - 1}) {
      if (at >= n || (at < 0 && at != -1)) continue;
      unsigned char* b = (unsigned char*)aligned_alloc(16, ((n + 15) & ~15) + 16);
      memset(b, 0, ((n + 15) & ~15) + 16);
      for (i64 i = 0; i <= at; i++) if (rng() % 3 == 0) b[i] = (unsigned char)(1 + rng() % 255);
      if (at >= 0) b[at] = 0x80;
      u64 want = 0;
      for (i64 i = n - 1; i >= 0; i--) if (b[i]) { want = (u64)(i + 1); break; }
      u64 got = 0;
      launch((unsigned)std::max<i64>(1, std::min<i64>(1024, (n + 16 * 256 - 1) / (16 * 256))), 256, [&] { zero_extent(b, n, &got); });
      if (got != want) { printf("FAIL zero_extent n=%lld last=%lld: %llu, want %llu\n", (long long)n, (long long)at, got, want); fails++; }
      zx++;
      free(b);
    }
  }
  printf("zero_extent: %d buffers against a scalar scan\n", zx);
  printf("%zu descriptors, %s\n", ds.size(), fails ? "FAILED" : "all equal");
  return fails != 0;
}
