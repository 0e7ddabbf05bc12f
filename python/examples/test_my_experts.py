"""A test a kernel author keeps next to the kernel (runs under pytest or unittest).

    cd python && PYTHONPATH=.:examples python3 -m pytest examples/test_my_experts.py
    cd python && PYTHONPATH=.:examples python3 -m unittest examples.test_my_experts

moecheck.check runs the moecheck CLI (MOECHECK_CLI, `moecheck` on PATH, or `go run` in a
checkout) against the function through the worker protocol: random cases with sentinels and
empty experts, every property, NaN/Inf/huge-poisoned allocations, shrinking and a one-line
reproduce command on failure.
"""

import unittest

import moecheck

# Every property (the default). A kernel that runs one GEMM per expert, whose row count changes
# with the batch, may fail token-permutation and zero-weight-is-sentinel bitwise on a GEMM that
# rounds a row differently for another row count (no batch invariance); drop a property only
# with such a reason written down.
PROPERTIES = None


class MyExpertsTest(unittest.TestCase):
    def test_moecheck(self):
        r = moecheck.check("callable:my_experts:experts_forward", cases=50, dtypes=["fp32"], properties=PROPERTIES)
        if r.returncode == 3:
            self.skipTest("moecheck CLI unavailable: " + r.output[-300:])
        self.assertTrue(r.passed, "\n".join(f"{f['property']}: {f.get('shrunk')}\n  {f.get('reproduce')}" for f in r.failing) or r.output[-2000:])


def test_moecheck():  # pytest style
    r = moecheck.check("callable:my_experts:experts_forward", cases=50, dtypes=["fp32"], properties=PROPERTIES)
    assert r.passed, r.output[-2000:]


if __name__ == "__main__":
    unittest.main()
