"""The transformers: targets' glue (config, module, implementation selection, weight loading)
against a stand-in of transformers' public interface (tests/fake_transformers). The real
library runs on the GPU machine (scripts/device-torch.sh); this proves only the plumbing."""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_transformers")

SCRIPT = r"""
import sys, torch
from moecheck import protocol as P, targets, worker
from moecheck.experts import Experts
for impl in ("batched_mm", "eager"):
    t = targets.resolve("transformers:" + impl, torch.device("cpu"))
    for act, lay, bias in (("swiglu", "standard", False), ("gptoss", "transposed", True)):
        h = P.CaseHeader(t=4, h=8, i=8, e=3, k=2, dtype="fp32", act=act, layout=lay, bias=bias, ep_world=2)
        c = worker._probe_case(h)
        c.tensors["ids"][0, 0] = h.e
        c.options.poison = "nan"
        got = targets.run_case(t, c, torch.device("cpu"), "dispatch")
        m = t.module(h, torch.device("cpu"))
        assert type(m).__module__.startswith("transformers.models."), type(m)
        assert m.config._experts_implementation == impl
        assert tuple(got["dw1"].shape) == tuple(c.tensors["w1"].shape)
        assert bool((got["drw"][0, 0] == 0).item()), got["drw"]
        assert all(bool(torch.isfinite(v).all()) for v in got.values())
        print(impl, act, "ok")
# Sentinel ids mark the module expert-parallel whatever the EP world (transformers produces
# them only under EP); a world-1 case without sentinels stays on a plain module.
t = targets.resolve("transformers:batched_mm", torch.device("cpu"))
h = P.CaseHeader(t=2, h=8, i=8, e=3, k=2, dtype="fp32")
c = worker._probe_case(h, sentinels=False)
assert not targets.expert_parallel(c)
targets.run_case(t, c, torch.device("cpu"), "none")
assert getattr(t.module(h, torch.device("cpu"), False).config, "distributed_config", None) is None
c.tensors["ids"][1, 1] = h.e
assert targets.expert_parallel(c)
got = targets.run_case(t, c, torch.device("cpu"), "none")
assert t.module(h, torch.device("cpu"), True).config.distributed_config.enable_expert_parallel
assert bool((got["drw"][1, 1] == 0).item()), got["drw"]
print("ep marking ok")
# transformers' own experts functions run on moecheck.experts.Experts (callable: targets):
# they read has_gate / is_concatenated.
from transformers.integrations.moe import batched_mm_experts_forward
for act, tr, bias in (("swiglu", False, False), ("gptoss", True, True)):
    m = Experts(3, 8, 8, act=act, transposed=tr, bias=bias)
    assert m.is_concatenated == (act == "swiglu")
    y = batched_mm_experts_forward(m, torch.randn(2, 8), torch.tensor([[0, 3], [2, 1]]), torch.rand(2, 2))
    assert tuple(y.shape) == (2, 8)
print("callable on Experts ok")
try:
    targets.resolve("transformers:no_such_impl", torch.device("cpu"))
    sys.exit("no error for an unknown implementation")
except targets.TargetError as e:
    assert "batched_mm" in str(e), e
print("done")
"""


class TransformersGlueTest(unittest.TestCase):
    def test_glue_on_the_stand_in(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([FAKE, os.path.dirname(HERE)])
        p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("eager gptoss ok", p.stdout)
        self.assertIn("ep marking ok", p.stdout)
        self.assertIn("callable on Experts ok", p.stdout)
        self.assertIn("done", p.stdout)


if __name__ == "__main__":
    unittest.main()
