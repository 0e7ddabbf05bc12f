"""Capabilities: the Python check agrees with gpu/worker/caps.go's rules (same table as
caps_test.go's TestCapabilitiesSupports)."""

import unittest

from moecheck import caps
from moecheck.protocol import CaseHeader, Options

CAPS = {"dtypes": ["bf16"], "variants": [{"act": "swiglu", "layout": "standard", "bias": False},
                                         {"act": "gptoss", "layout": "transposed", "bias": True}],
        "ep_global_routing": False, "align": {"bf16": {"h": 8, "i": 8}}, "non_finite": True,
        "poisons": ["zeros", "nan"], "stages": False, "triage": True, "faults": [], "contract": "torch"}


class CapsTest(unittest.TestCase):
    def test_table(self):
        base = dict(t=2, h=8, i=16, e=2, k=2, dtype="bf16")
        for name, over, opts, want in [
            ("ok/swiglu", {}, Options(poison="nan"), None),
            ("ok/gptoss", {"act": "gptoss", "layout": "transposed", "bias": True}, Options(), None),
            ("dtype", {"dtype": "fp32"}, Options(), "dtype fp32"),
            ("variant/bias", {"bias": True}, Options(), "variant swiglu/standard/bias=true"),
            ("align/h", {"h": 12}, Options(), "multiple of 8"),
            ("align/i", {"i": 4}, Options(), "multiple of 8"),
            ("global", {"global_routing": True}, Options(), "global routing"),
            ("poison", {}, Options(poison="stale"), "poison stale"),
            ("fault", {}, Options(faults=["clamp-sentinel"]), "faults clamp-sentinel"),
        ]:
            with self.subTest(name):
                h = CaseHeader(**{**base, **over})
                got = caps.check(CAPS, h, opts)
                if want is None:
                    self.assertIsNone(got)
                else:
                    self.assertIsNotNone(got)
                    self.assertIn(want, got)


if __name__ == "__main__":
    unittest.main()
