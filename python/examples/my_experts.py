"""A kernel author's experts function, verified with moecheck (plain torch).

It has transformers' experts-interface signature, so the same function can be registered
with ``transformers.integrations.moe.ALL_EXPERTS_FUNCTIONS.register("my_experts", ...)`` and
selected with ``config._experts_implementation = "my_experts"``. Check it with:

    PYTHONPATH=python:python/examples moecheck check --backend torch:callable:my_experts:experts_forward --cases 500

A Triton or CUTLASS kernel plugs in the same way: call it from a function of this signature.
"""

import torch


def experts_forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                    top_k_weights: torch.Tensor) -> torch.Tensor:
    """One small GEMM per slot (batched): each slot's rounding is independent of the rest of
    the batch, so the result is batch invariant; sentinel slots (id == E under expert
    parallelism) are computed with expert 0's weights and then dropped with torch.where, so
    nothing of theirs (not even a NaN) reaches the output or the gradients."""
    E = self.num_experts
    T, K = top_k_index.shape
    ids = top_k_index.reshape(-1)
    real = ids < E
    safe = torch.where(real, ids, torch.zeros_like(ids))
    x = hidden_states.repeat_interleave(K, dim=0)  # slot s = token s // K
    w1 = self.gate_up_proj[safe]  # (S, 2I, H) or (S, H, 2I)
    h1 = torch.bmm(x.unsqueeze(1), w1 if self.is_transposed else w1.transpose(1, 2)).squeeze(1)
    if self.has_bias:
        h1 = h1 + self.gate_up_proj_bias[safe]
    a = self._apply_gate(h1)
    w2 = self.down_proj[safe]
    h2 = torch.bmm(a.unsqueeze(1), w2 if self.is_transposed else w2.transpose(1, 2)).squeeze(1)
    if self.has_bias:
        h2 = h2 + self.down_proj_bias[safe]
    o = h2 * top_k_weights.reshape(-1, 1)
    o = torch.where(real.unsqueeze(1), o, torch.zeros_like(o))
    return o.float().view(T, K, -1).sum(dim=1).to(hidden_states.dtype)


# Optional: narrow what moecheck generates for this kernel (merged into the defaults).
experts_forward.moecheck_capabilities = {"dtypes": ["bf16", "fp32"]}
