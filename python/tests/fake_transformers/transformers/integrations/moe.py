"""Stand-in of transformers.integrations.moe (see the package doc)."""

import torch


def batched_mm_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    T, K = top_k_index.shape
    if not self.has_gate:  # read as transformers 5.17 reads it (gate_up_proj vs up_proj)
        raise NotImplementedError("the stand-in has gated experts only")
    ids = top_k_index.reshape(-1)
    valid = ids < self.num_experts
    safe = ids.clamp(0, self.num_experts - 1)
    x = hidden_states.repeat_interleave(K, dim=0)
    w1 = self.gate_up_proj[safe]
    h1 = torch.bmm(x.unsqueeze(1), w1).squeeze(1) if self.is_transposed else torch.bmm(w1, x.unsqueeze(-1)).squeeze(-1)
    if self.has_bias:
        h1 = h1 + self.gate_up_proj_bias[safe]
    a = self._apply_gate(h1)
    w2 = self.down_proj[safe]
    h2 = torch.bmm(a.unsqueeze(1), w2).squeeze(1) if self.is_transposed else torch.bmm(w2, a.unsqueeze(-1)).squeeze(-1)
    if self.has_bias:
        h2 = h2 + self.down_proj_bias[safe]
    w = torch.where(valid, top_k_weights.reshape(-1), torch.zeros_like(top_k_weights.reshape(-1)))
    o = torch.where(valid.unsqueeze(-1), h2 * w.unsqueeze(-1), torch.zeros_like(h2))
    return o.float().view(T, K, -1).sum(dim=1).to(hidden_states.dtype)


class _Registry(dict):
    def valid_keys(self):
        return list(self.keys())


ALL_EXPERTS_FUNCTIONS = _Registry(batched_mm=batched_mm_experts_forward)


def _default_apply_gate(self, gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return self.act_fn(gate) * up


def use_experts_implementation(experts_class=None, *, is_concatenated=True, is_transposed=False, has_bias=False,
                               has_gate=True):
    def wrap(cls):
        init, fwd = cls.__init__, cls.forward

        def __init__(self, config, *a, **k):
            init(self, config, *a, **k)
            self.config, self.has_bias, self.is_transposed = config, has_bias, is_transposed
            self.has_gate, self.is_concatenated = has_gate, is_concatenated

        def forward(self, *a, **k):
            impl = self.config._experts_implementation
            f = fwd if impl == "eager" else ALL_EXPERTS_FUNCTIONS[impl]
            return f(self, *a, **k)

        if not hasattr(cls, "_apply_gate"):
            cls._apply_gate = _default_apply_gate
        cls.__init__, cls.forward = __init__, forward
        return cls

    return wrap(experts_class) if experts_class is not None else wrap
