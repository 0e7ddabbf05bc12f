#!/usr/bin/env python3
"""Times torch._grouped_mm and a transformers-style grouped_mm MoE layer (forward and
backward, with the three sentinel masks) at Qwen3-30B-A3B rank shape, for comparison with
moecheck-worker -bench (same shapes, same routing distribution, bf16, CUDA events, median of
repeats after warm-up). Prints RESULT lines that scripts/device-run.sh tabulates.

    python3 bench/torch/grouped_mm.py [--tokens 16384] [--reps 20]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F


def time_ms(fn, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    T, H, I, E, K = args.tokens, 2048, 768, 16, 8
    dev = "cuda"
    dt = torch.bfloat16
    torch.manual_seed(0)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}; T={T} H={H} I={I} E={E} K={K} bf16")
    for world in (1, 8):
        G = E * world
        rank = 3 if world > 1 else 0
        gids = torch.randint(0, G, (T, K), device=dev)
        local = (gids >= rank * E) & (gids < (rank + 1) * E)
        ids = torch.where(local, gids - rank * E, torch.full_like(gids, E))
        rw = torch.where(local, torch.rand(T, K, device=dev), torch.zeros(T, K, device=dev)).to(dt)
        x = torch.randn(T, H, device=dev, dtype=dt)
        dy = torch.randn(T, H, device=dev, dtype=dt)
        w1 = (torch.randn(E, 2 * I, H, device=dev) / H ** 0.5).to(dt)
        w2 = (torch.randn(E, H, I, device=dev) / I ** 0.5).to(dt)
        flat = ids.view(-1)
        order = torch.argsort(flat, stable=True)
        sorted_ids = flat[order]
        counts = torch.bincount(sorted_ids, minlength=E + 1)[:E]
        offs = torch.cumsum(counts, 0).to(torch.int32)
        R = int(offs[-1])
        name = f"ep={world} rows={R}"
        xs = x[order // K].contiguous()
        flops1 = 2 * R * 2 * I * H
        try:
            ms = time_ms(lambda: torch._grouped_mm(xs, w1.transpose(-2, -1), offs=offs), reps=args.reps)
            print(f"RESULT torch {name} gemm1_ms={ms:.3f} gemm1_tflops={flops1 / ms / 1e9:.1f}")
        except Exception as e:  # noqa: BLE001
            print(f"torch {name} gemm1: {type(e).__name__}: {e}")

        w1p = w1.clone().requires_grad_(True)
        w2p = w2.clone().requires_grad_(True)
        xp = x.clone().requires_grad_(True)
        rwp = rw.clone().requires_grad_(True)

        def layer():
            fl = ids.view(-1)
            od = torch.argsort(fl, stable=True)
            sid = fl[od]
            cnt = torch.bincount(sid, minlength=E + 1)[:E]
            of = torch.cumsum(cnt, 0).to(torch.int32)
            keep = (sid < E).to(dt)[:, None]
            g = xp[od // K] * keep                                           # gather, mask A
            h1 = torch._grouped_mm(g, w1p.transpose(-2, -1), offs=of) * keep  # GEMM 1, mask B
            gate, up = h1.chunk(2, dim=-1)
            a = F.silu(gate) * up
            h2 = torch._grouped_mm(a, w2p.transpose(-2, -1), offs=of) * keep  # GEMM 2, mask C
            o = h2 * rwp.view(-1)[od][:, None]
            y = torch.zeros(T * K, H, device=dev, dtype=dt).index_copy(0, od, o)
            y = y.view(T, K, H).float().sum(1).to(dt)                        # combine in fp32
            y.backward(dy)

        try:
            ms = time_ms(layer, reps=args.reps)
            total = 6 * R * I * H * 3  # 3 GEMMs of each weight, 2·R·(2I·H + H·I) each
            print(f"RESULT torch {name} fwdbwd_ms={ms:.3f} fwdbwd_gemm_tflops={total / ms / 1e9:.1f}")
        except Exception as e:  # noqa: BLE001
            print(f"torch {name} layer: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
