"""Stand-in (see the package doc)."""

import torch
from torch import nn

from ...integrations.moe import batched_mm_experts_forward, use_experts_implementation


@use_experts_implementation
class Qwen3MoeExperts(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_experts = config.num_experts
        self.gate_up_proj = nn.Parameter(torch.empty(config.num_experts, 2 * config.moe_intermediate_size, config.hidden_size))
        self.down_proj = nn.Parameter(torch.empty(config.num_experts, config.hidden_size, config.moe_intermediate_size))
        self.act_fn = nn.SiLU()

    def forward(self, hidden_states, top_k_index, top_k_weights):  # "eager": the same math here
        return batched_mm_experts_forward(self, hidden_states, top_k_index, top_k_weights)
