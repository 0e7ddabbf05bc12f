"""Probe: how does autograd form the weight gradient of a per-slot weight gather, as
transformers' batched_mm does (``W[expert_ids]``, one ``bmm`` per slot)? (docs/oracle.md §9.5,
the torch contract's WGradSlots.)

For each dtype and two weight-row sizes (one above 32 elements, one at most 32: CUDA's
index_put_ picks ``indexing_backward_kernel`` or ``indexing_backward_kernel_small_stride`` by
it), runs ``bmm(W[ids], x)`` forward and backward with many slots per expert and compares
``W.grad`` bitwise with two models of the per-slot form, each slot's product
``t_s = round_d(fl32(dy_s · x_s))`` added into zeros per expert in slot order:

    dtype-adds   acc = round_d(fl32(acc) + t_s) after every slot   (indexing_backward_kernel)
    fp32-sum     acc = Σ t_s in fp32 in slot order, one rounding   (small_stride / stride_1)

and with the GEMM form (``round_d(Σ dy_s·x_s)`` in float64, the rounding of the exact sum).

    python3 -m tests.batched_wgrad_probe --device cuda      (from python/)

Prints per dtype and row size how many elements each model matches bitwise; the contract
admits both sums in any order, so a result matching neither in slot order is still inside the
contract when it lies within the bound, but it would say the kernel reading was wrong. Exit
status 0 always (a report, not a test). On the CPU, torch's index_put_ adds in the dtype.
"""

from __future__ import annotations

import argparse
import sys

import torch


def probe(device: torch.device, dtype: torch.dtype, rows: int, cols: int, slots: int, experts: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(experts, rows, cols, generator=g).to(dtype).to(device).requires_grad_(True)
    ids = torch.randint(0, experts, (slots,), generator=g).to(device)
    x = torch.randn(slots, cols, generator=g).to(dtype).to(device)
    dy = torch.randn(slots, rows, generator=g).to(dtype).to(device)
    y = torch.bmm(W[ids], x.unsqueeze(-1)).squeeze(-1)  # batched_mm's standard layout
    y.backward(dy)
    got = W.grad.detach().float().cpu()

    # per-slot products: fp32 product rounded to the dtype (a GEMM with k = 1)
    t = (dy.float().unsqueeze(-1) * x.float().unsqueeze(1)).to(dtype).float().cpu()  # slots × rows × cols
    idc = ids.cpu()
    adds = torch.zeros(experts, rows, cols)
    f32 = torch.zeros(experts, rows, cols)
    for s in range(slots):  # slot order (the stable sort keeps it per expert)
        e = int(idc[s])
        adds[e] = (adds[e] + t[s]).to(dtype).float()
        f32[e] = f32[e] + t[s]
    f32 = f32.to(dtype).float()
    exact = torch.zeros(experts, rows, cols, dtype=torch.float64)
    prod64 = dy.double().cpu().unsqueeze(-1) * x.double().cpu().unsqueeze(1)
    exact.index_add_(0, idc, prod64)
    gemm = exact.to(dtype).float()
    n = got.numel()
    same = lambda a: int((a.view(torch.int32) == got.view(torch.int32)).sum())  # noqa: E731
    return (f"{str(dtype).replace('torch.', ''):9s} row {rows}x{cols}={rows * cols:3d} elements, {slots} slots on {experts} experts: "
            f"dtype-adds {same(adds)}/{n}, fp32-sum {same(f32)}/{n}, gemm (exact sum rounded) {same(gemm)}/{n}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m tests.batched_wgrad_probe")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--slots", type=int, default=96)
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    print(f"torch {torch.__version__} on {dev}")
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        for rows, cols in ((16, 8), (4, 4), (1, 1)):
            try:
                print(probe(dev, dt, rows, cols, a.slots, 2, 1))
            except RuntimeError as e:  # e.g. no fp16 bmm on an old CPU torch
                print(f"{dt} {rows}x{cols}: {type(e).__name__}: {str(e).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
