"""A plain-torch replica of transformers 5.17's grouped_mm experts forward, for running gpt-oss
cases on the CPU without transformers (``torch:callable:tests.gptoss_grouped_replica:experts_forward``).

Mirrors ``grouped_mm_experts_forward``: slots sorted by expert, one GEMM per expert in the
module's dtype, the bias added after the GEMM (a separate op), the module's own eager
``_apply_gate``, the routing-weight multiply in the dtype, and ``index_add_`` into a dtype
tensor; sentinel slots (id == E under expert parallelism) are masked out. GEMMs are done in
fp32 and rounded once (as cuBLAS/CUTLASS do). On the CPU with torch 1.13 the elementwise bf16
kernels still do not round as CUDA's do, so a CPU run is not a witness for CUDA (even
python/examples/my_experts.py fails most CPU bf16 cases there); run it on the device.
"""

import torch


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A GEMM as CUDA's cuBLAS/CUTLASS computes it: fp32 accumulation, one rounding to the
    dtype (torch 1.13's CPU bf16 GEMM does not accumulate in fp32, and has no fp16 GEMM).
    Autograd rounds each operand gradient once, as the CUDA GEMM backward does."""
    return (a.float() @ b.float()).to(a.dtype)


def experts_forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                    top_k_weights: torch.Tensor) -> torch.Tensor:
    E = self.num_experts
    T, K = top_k_index.shape
    ids = top_k_index.reshape(-1)
    token_idx = torch.arange(T, device=ids.device).repeat_interleave(K)
    w = top_k_weights.reshape(-1)
    order = torch.argsort(ids, stable=True)
    ids_g, tok_g, w_g = ids[order], token_idx[order], w[order]
    real = ids_g < E
    ids_safe = torch.where(real, ids_g, torch.zeros_like(ids_g))
    x_g = hidden_states[tok_g]
    outs = []
    for e in range(E):
        sel = ids_g == e
        xs = x_g[sel]
        w1 = self.gate_up_proj[e]
        h1 = _mm(xs, w1 if self.is_transposed else w1.t())
        outs.append(h1)
    sentinel = _mm(x_g[~real], torch.zeros_like(self.gate_up_proj[0] if self.is_transposed else self.gate_up_proj[0].t()))
    h1 = torch.cat(outs + [sentinel], 0)
    if self.has_bias:
        h1 = h1 + self.gate_up_proj_bias[ids_safe]
    a = self._apply_gate(h1)
    outs = []
    start = 0
    for e in range(E):
        n = int((ids_g == e).sum())
        w2 = self.down_proj[e]
        outs.append(_mm(a[start:start + n], w2 if self.is_transposed else w2.t()))
        start += n
    outs.append(_mm(a[start:], torch.zeros_like(self.down_proj[0] if self.is_transposed else self.down_proj[0].t())))
    h2 = torch.cat(outs, 0)
    if self.has_bias:
        h2 = h2 + self.down_proj_bias[ids_safe]
    o = h2 * w_g.unsqueeze(-1)
    o = torch.where(real.unsqueeze(-1), o, torch.zeros_like(o))
    out = torch.zeros_like(hidden_states)
    out.index_add_(0, tok_g, o.to(out.dtype))
    return out
