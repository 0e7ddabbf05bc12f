"""A ledger of known historical MoE bugs, RECONSTRUCTED from public history.

None of these functions is the upstream code verbatim: each is written here, in plain torch,
after the public descriptions of the bug (issue and pull-request threads, the shape of the
code before and after the fix) so that moecheck can show it catches the bug class. They use
transformers' experts-interface signature ``(self, hidden_states, top_k_index, top_k_weights)``
and run on moecheck.experts.Experts (or any module with the same attributes).

Entries (``--target ledger:<name>``):

- ``clamp-sentinels`` — transformers before #45621 (issue #45473): EP sentinel ids (= E) are
  clamped to E−1, so sentinel slots are computed as expert E−1 and nothing masks them. With a
  zero sentinel weight the forward output is right, but the routing-weight gradient of every
  sentinel slot is Σ dY·(expert E−1's output) instead of 0, expert E−1's bias gets gradient from
  sentinel rows, and a non-zero sentinel weight changes the output.
- ``45621-as-merged`` — the grouped_mm path as #45621 merged it: sentinel rows of the gathered
  input are zeroed before GEMM 1 (the pre-mask) and the only other mask is applied after the
  routing-weight multiply. GEMM outputs past offsets[E−1] are never written (torch._grouped_mm
  leaves them uninitialized), so the weight gradient of a sentinel slot is 0·(unwritten) =
  NaN under NaN or Inf poison: leak 1 of shared/ANCHORS.md §1 (#48205 fixed leaks 2 and 3).
- ``fixed`` — the same path with a mask after each grouped GEMM (as #48205 describes the fix):
  the control entry, which must pass.

On CUDA with bf16 and 16-byte aligned H and I the grouped GEMMs are torch._grouped_mm (its
real unwritten tail); elsewhere an emulation with the same contract (outputs from torch.empty,
rows ≥ offsets[E−1] never written; dW[e] exact zero for an expert without rows).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch


class _EmulatedGroupedMM(torch.autograd.Function):
    """y[rows of e] = x[rows of e] @ w[e] for rows < offs[E−1]; other rows are left as
    torch.empty returned them (poisoned under moecheck), in forward and for dX in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.bounds = [int(v) for v in offs.tolist()]
        out = torch.empty(x.size(0), w.size(2), dtype=x.dtype, device=x.device)
        start = 0
        for e, end in enumerate(ctx.bounds):
            if end > start:
                out[start:end] = x[start:end] @ w[e]
            start = end
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        dx = torch.empty_like(x)
        dw = torch.empty_like(w)
        start = 0
        for e, end in enumerate(ctx.bounds):
            if end > start:
                dx[start:end] = g[start:end] @ w[e].transpose(0, 1)
            dw[e] = x[start:end].transpose(0, 1) @ g[start:end]  # zero rows: an exact zero matrix
            start = end
        return dx, dw, None


def grouped_mm(x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """(S, in) × grouped (E, in, out) → (S, out), rows past offs[−1] unwritten."""
    real = getattr(torch, "_grouped_mm", None)
    if real is not None and x.is_cuda and x.dtype == torch.bfloat16 and x.size(1) % 8 == 0 and w.size(2) % 8 == 0:
        return real(x, w, offs=offs)
    return _EmulatedGroupedMM.apply(x, w, offs)


def _linear(self, x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor, bias: Optional[torch.Tensor],
            bias_ids: torch.Tensor) -> torch.Tensor:
    out = grouped_mm(x, w if self.is_transposed else w.transpose(-2, -1), offs)
    if bias is not None:
        out = out + bias[bias_ids]
    return out


def _grouped_path(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor,
                  variant: str) -> torch.Tensor:
    E = self.num_experts
    T, K = top_k_index.shape
    H = hidden_states.size(-1)
    token_idx = torch.arange(T, device=hidden_states.device).unsqueeze(1).expand(-1, K).reshape(-1)
    sample_weights = top_k_weights.reshape(-1)
    expert_ids = top_k_index.reshape(-1)
    if variant == "clamp-sentinels":
        expert_ids = expert_ids.clamp(0, E - 1)  # the bug: sentinels become expert E−1
    selected = hidden_states[token_idx]
    perm = torch.argsort(expert_ids, stable=True)
    inv_perm = torch.argsort(perm, stable=True)
    ids_g = expert_ids[perm]
    w_g = sample_weights[perm]
    x_g = selected[perm]
    invalid = (ids_g >= E).unsqueeze(-1)
    if variant in ("45621-as-merged", "fixed"):
        x_g = x_g.masked_fill(invalid, 0)  # pre-mask (mask A)
    counts = torch.histc(ids_g.float(), bins=E, min=0, max=E - 1)
    offs = torch.cumsum(counts, dim=0, dtype=torch.int32)
    bias_ids = ids_g.clamp(max=E - 1)
    h1 = _linear(self, x_g, self.gate_up_proj, offs, self.gate_up_proj_bias if self.has_bias else None, bias_ids)
    if variant == "fixed":
        h1 = h1.masked_fill(invalid, 0)  # mask B
    a = self._apply_gate(h1)
    h2 = _linear(self, a, self.down_proj, offs, self.down_proj_bias if self.has_bias else None, bias_ids)
    if variant == "fixed":
        h2 = h2.masked_fill(invalid, 0)  # mask C
    o = h2 * w_g.unsqueeze(-1)
    if variant == "45621-as-merged":
        o = o.masked_fill(invalid, 0)  # the only post-mask, after the weight multiply
    out = o[inv_perm].view(T, K, H).float().sum(dim=1)
    return out.to(hidden_states.dtype)


def clamp_sentinels(self, hidden_states, top_k_index, top_k_weights):
    """Reconstruction of transformers' grouped path before #45621 (sentinels clamped)."""
    return _grouped_path(self, hidden_states, top_k_index, top_k_weights, "clamp-sentinels")


def as_merged_45621(self, hidden_states, top_k_index, top_k_weights):
    """Reconstruction of the grouped path as #45621 merged it (pre-mask + post-weight mask)."""
    return _grouped_path(self, hidden_states, top_k_index, top_k_weights, "45621-as-merged")


def fixed(self, hidden_states, top_k_index, top_k_weights):
    """The grouped path with masks after each grouped GEMM (the control entry)."""
    return _grouped_path(self, hidden_states, top_k_index, top_k_weights, "fixed")


ENTRIES: Dict[str, Callable] = {
    "clamp-sentinels": clamp_sentinels,
    "45621-as-merged": as_merged_45621,
    "fixed": fixed,
}

# What each entry is expected to show (for reports and the tests).
EXPECTED: Dict[str, str] = {
    "clamp-sentinels": "routing-weight gradient of sentinel slots non-zero (sentinels computed as expert E-1; #45473/#45621)",
    "45621-as-merged": "leak 1: routing-weight gradient of sentinel slots NaN under NaN/Inf poison (0 x unwritten GEMM 2 rows)",
    "fixed": "none (control)",
}
