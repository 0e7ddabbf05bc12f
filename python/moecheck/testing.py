"""Targets for protocol tests (``callable:moecheck.testing:<name>``); not MoE paths.

- ``echo``: returns the inputs' bits as the results: y = hidden_states, dX = dY, dW1 = W1,
  dW2 = W2, d_rw = the routing weights (dB1 = B1, dB2 = B2 with bias). A test that sends a case
  through a client and compares these bit for bit checks the codec both ways (NaN payloads too).
- ``raises``: raises ValueError (the "raised" error kind; the worker must stay alive).
- ``rejects_sentinels``: ``echo``, after a one-hot over E classes that raises on a sentinel id
  (id E), as transformers 5.17's eager experts do: the start-up probe must keep its dtypes and
  variants (it probes without sentinels), and cases with sentinels must fail as raised.
- ``fixed_rejects_sentinels``: the ledger's ``fixed`` (a correct path) behind the same one-hot:
  correct on every sentinel-free case, raises on a sentinel id; with ``--no-sentinels`` the
  check must generate only cases it takes.
- ``lanes_fault`` / ``lanes_exit``: ``echo`` for a worker's lanes: a case of 7 tokens sleeps
  0.2 s first (it is in flight while another lane's case fails), a case of 13 tokens raises
  SimulatedDeviceFault (the worker treats it as a lost CUDA context: crash on its lane, and the
  process exits) or, for ``lanes_exit``, ends the process without a reply (a hard fault).
- ``fixed_faults_some``: the ledger's ``fixed`` (a correct path), but a case whose token
  width H is odd (the start-up probe's is 8) raises SimulatedDeviceFault (for the CLI's records with lanes against one job).
"""

from __future__ import annotations

import torch


class _Echo(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rw, w1, w2, b1, b2):  # type: ignore[override]
        ctx.save_for_backward(rw, w1, w2, b1, b2)
        return x.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        rw, w1, w2, b1, b2 = ctx.saved_tensors
        c = lambda t: t.clone() if t.numel() else None  # noqa: E731
        return g.clone(), rw.clone(), w1.clone(), w2.clone(), c(b1), c(b2)


def echo(self, hidden_states, top_k_index, top_k_weights):
    e = torch.empty(0, dtype=hidden_states.dtype, device=hidden_states.device)
    b1 = self.gate_up_proj_bias if self.has_bias else e
    b2 = self.down_proj_bias if self.has_bias else e
    return _Echo.apply(hidden_states, top_k_weights, self.gate_up_proj, self.down_proj, b1, b2)


def raises(self, hidden_states, top_k_index, top_k_weights):
    raise ValueError("moecheck.testing.raises: raised on purpose")


def rejects_sentinels(self, hidden_states, top_k_index, top_k_weights):
    torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts)  # raises on id E
    return echo(self, hidden_states, top_k_index, top_k_weights)


def aligned(self, hidden_states, top_k_index, top_k_weights):
    return echo(self, hidden_states, top_k_index, top_k_weights)


aligned.moecheck_capabilities = {"align": {"bf16": {"h": 8, "i": 8}, "fp16": {"h": 8, "i": 8}, "fp32": {"h": 8, "i": 8}}}


def fixed_rejects_sentinels(self, hidden_states, top_k_index, top_k_weights):
    from .ledger import fixed

    torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts)  # raises on id E
    return fixed(self, hidden_states, top_k_index, top_k_weights)


class SimulatedDeviceFault(RuntimeError):
    """Raised by the lanes_* targets: the worker handles it as a CUDA fault (the shared
    context lost), on the CPU too, so crash attribution across lanes is testable there."""

    moecheck_device_fault = True


def _lanes(self, hidden_states, top_k_index, top_k_weights, hard: bool):
    import os
    import time

    t = hidden_states.shape[0]
    if t == 7:
        time.sleep(0.2)
    elif t == 13:
        if hard:
            os._exit(3)
        raise SimulatedDeviceFault("moecheck.testing: simulated device fault (a case of 13 tokens)")
    return echo(self, hidden_states, top_k_index, top_k_weights)


def lanes_fault(self, hidden_states, top_k_index, top_k_weights):
    return _lanes(self, hidden_states, top_k_index, top_k_weights, hard=False)


def lanes_exit(self, hidden_states, top_k_index, top_k_weights):
    return _lanes(self, hidden_states, top_k_index, top_k_weights, hard=True)


def fixed_faults_some(self, hidden_states, top_k_index, top_k_weights):
    from .ledger import fixed

    if hidden_states.shape[1] % 2 == 1:
        raise SimulatedDeviceFault("moecheck.testing: simulated device fault (odd H)")
    return fixed(self, hidden_states, top_k_index, top_k_weights)
