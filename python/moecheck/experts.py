"""A plain experts module with the attributes transformers' experts interface reads.

``callable:`` targets and the ledger run on it: ``gate_up_proj`` (E×2I×H, or E×H×2I when
``is_transposed``), ``down_proj`` (E×H×I, or E×I×H), optional ``gate_up_proj_bias`` (E×2I) and
``down_proj_bias`` (E×H), ``num_experts``, ``has_bias``, ``is_transposed``, ``has_gate`` (always
true: gated experts), ``is_concatenated`` (gate and up as two halves; false for gpt-oss's
interleaved columns), ``act_fn``,
``_apply_gate`` (SwiGLU on the halves, or gpt-oss's interleaved clamped gate with ``alpha``
1.702 and ``limit`` 7.0), the way transformers' Qwen3-MoE and gpt-oss experts define them.
A function written against transformers' experts interface runs on it unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class Experts(nn.Module):
    def __init__(self, num_experts: int, hidden: int, intermediate: int, act: str = "swiglu",
                 transposed: bool = False, bias: bool = False, dtype: torch.dtype = torch.float32,
                 device: Optional[torch.device] = None) -> None:
        super().__init__()
        if act not in ("swiglu", "gptoss"):
            raise ValueError(f"act {act!r}: want swiglu or gptoss")
        E, H, I = num_experts, hidden, intermediate
        self.num_experts = E
        self.hidden_dim = H
        self.intermediate_dim = I
        self.is_transposed = transposed
        self.has_bias = bias
        # transformers 5.17's experts functions read these (use_experts_implementation sets them).
        self.has_gate = True
        self.is_concatenated = act != "gptoss"
        self.act = act
        self.alpha = 1.702
        self.limit = 7.0
        kw = {"dtype": dtype, "device": device}
        w1 = (E, H, 2 * I) if transposed else (E, 2 * I, H)
        w2 = (E, I, H) if transposed else (E, H, I)
        self.gate_up_proj = nn.Parameter(torch.zeros(w1, **kw))
        self.down_proj = nn.Parameter(torch.zeros(w2, **kw))
        if bias:
            self.gate_up_proj_bias = nn.Parameter(torch.zeros(E, 2 * I, **kw))
            self.down_proj_bias = nn.Parameter(torch.zeros(E, H, **kw))
        else:
            self.gate_up_proj_bias = None
            self.down_proj_bias = None
        self.act_fn = nn.SiLU()

    def _apply_gate(self, gate_up: torch.Tensor) -> torch.Tensor:
        if self.act == "gptoss":
            gate, up = gate_up[..., ::2], gate_up[..., 1::2]
            gate = gate.clamp(min=None, max=self.limit)
            up = up.clamp(min=-self.limit, max=self.limit)
            glu = gate * torch.sigmoid(gate * self.alpha)
            return (up + 1) * glu
        gate, up = gate_up.chunk(2, dim=-1)
        return self.act_fn(gate) * up
