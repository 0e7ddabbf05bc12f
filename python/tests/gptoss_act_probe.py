"""Probe: does autograd through gpt-oss's eager ``_apply_gate`` round where the torch contract
says it does? (docs/oracle.md §9, the eager activation.)

Runs ``_apply_gate`` (transformers' ``GptOssExperts`` when importable, else moecheck's
``Experts(act="gptoss")``) forward and backward in bf16/fp16 on random and integer data, and
compares every result bitwise with the contract's op-by-op model: each op computed in fp32
from the stored operands and rounded once to the dtype:

    g = min(gate, 7); u = clamp(up, ±7); t = g·1.702; σ = sigmoid(t); glu = g·σ; u1 = u+1
    d_u1 = da·glu; d_glu = da·u1; d_g1 = d_glu·σ; d_σ = d_glu·g; d_t = (d_σ·(1−σ))·σ;
    d_g2 = d_t·1.702; d_g = [gate ≤ 7]·(d_g1 + d_g2); d_u = [−7 ≤ up ≤ 7]·d_u1

    python3 -m tests.gptoss_act_probe --device cuda      (from python/)

Prints, per dtype and data kind, how many gate and up gradients differ from the model and the
first few differing elements with their inputs; exit status 1 if any differ. Meant for the
CUDA device: torch 1.13's CPU kernels (Debian's) do not compute bf16 ops as CUDA does (its
bf16 GEMM does not even accumulate in fp32), so a CPU run says nothing about CUDA.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Tuple

import torch


def _gate_fn(dtype: torch.dtype, device: torch.device) -> Tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    try:
        from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts  # type: ignore
        from transformers.models.gpt_oss.configuration_gpt_oss import GptOssConfig  # type: ignore
        cfg = GptOssConfig(hidden_size=8, intermediate_size=8, num_local_experts=2)
        m = GptOssExperts(cfg)
        if hasattr(m, "_apply_gate"):
            return "transformers GptOssExperts._apply_gate", m._apply_gate
    except Exception:  # noqa: BLE001 - fall back to moecheck's module
        pass
    from moecheck.experts import Experts
    m = Experts(2, 8, 8, act="gptoss", transposed=True, bias=True, dtype=dtype, device=device)
    return "moecheck Experts._apply_gate", m._apply_gate


def _model(gate_up: torch.Tensor, da: torch.Tensor, alpha: float, limit: float) -> Tuple[torch.Tensor, torch.Tensor]:
    d = gate_up.dtype
    r = lambda x: x.to(d).float()  # noqa: E731 - one rounding to the dtype
    gate, up = gate_up[..., ::2].float(), gate_up[..., 1::2].float()
    da = da.float()
    g = gate.clamp(max=limit)
    u = up.clamp(-limit, limit)
    t = r(g * alpha)
    sig = r(torch.sigmoid(t))
    glu = r(g * sig)
    u1 = r(u + 1)
    du1 = r(da * glu)
    dglu = r(da * u1)
    dg1 = r(dglu * sig)
    dsig = r(dglu * g)
    dt = r(r(dsig * r(1 - sig)) * sig)  # sigmoid_backward: a * (scalar_t(1) - b) * b in scalar_t
    dg2 = r(dt * alpha)
    dg = r(dg1 + dg2)
    dg = torch.where(gate <= limit, dg, torch.zeros_like(dg))
    du = torch.where((up >= -limit) & (up <= limit), du1, torch.zeros_like(du1))
    return dg.to(d), du.to(d)


def probe(device: torch.device, n: int, seed: int, show: int) -> int:
    gen = torch.Generator().manual_seed(seed)
    bad = 0
    for dtype in (torch.bfloat16, torch.float16):
        name, fn = _gate_fn(dtype, device)
        for kind in ("normal", "integer", "wide"):
            if kind == "normal":
                x = torch.randn(n, 64, generator=gen) * 3
            elif kind == "integer":
                x = torch.randint(-9, 10, (n, 64), generator=gen).float()
            else:
                x = torch.randn(n, 64, generator=gen) * 20
            da = torch.randn(n, 32, generator=gen) * 4
            gate_up = x.to(dtype).to(device).requires_grad_(True)
            dad = da.to(dtype).to(device)
            try:
                fn(gate_up).backward(dad)
            except RuntimeError as e:  # e.g. torch 1.13's CPU has no fp16 clamp
                print(f"{name} {str(dtype)[6:]} {kind}: not run on {device}: {e}")
                break
            got = gate_up.grad.detach()
            dg, du = _model(gate_up.detach(), dad, 1.702, 7.0)
            for what, g, w, inp in (("d_gate", got[..., ::2], dg, gate_up.detach()[..., ::2]),
                                    ("d_up", got[..., 1::2], du, gate_up.detach()[..., 1::2])):
                diff = (g.float() != w.float()) & ~(torch.isnan(g.float()) & torch.isnan(w.float()))
                k = int(diff.sum())
                bad += k
                print(f"{name} {str(dtype)[6:]} {kind} {what}: {k} of {g.numel()} differ from the model")
                for idx in diff.nonzero()[:show].tolist():
                    i, j = idx
                    print(f"    [{i},{j}] input {float(inp[i, j])} other {float(gate_up.detach()[i, 2*j + (1 if what == 'd_gate' else 0)])} "
                          f"da {float(dad[i, j])} got {float(g[i, j])} model {float(w[i, j])}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m tests.gptoss_act_probe", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--show", type=int, default=4)
    a = p.parse_args(argv)
    if a.rows < 1 or a.rows > 1 << 20:
        p.error(f"--rows {a.rows}: want 1 to {1 << 20}")
    return probe(torch.device(a.device), a.rows, a.seed, a.show)


if __name__ == "__main__":
    sys.exit(main())
