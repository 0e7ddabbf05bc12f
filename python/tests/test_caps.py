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
                got = caps.check(CAPS, h, opts, 2)  # sentinels absent from CAPS: taken
                if want is None:
                    self.assertIsNone(got)
                else:
                    self.assertIsNotNone(got)
                    self.assertIn(want, got)

    def test_sentinels(self):
        # same table as caps_test.go's TestCapabilitiesSentinels
        h = CaseHeader(t=2, h=8, i=16, e=2, k=2, dtype="bf16")
        for name, decl, n, want in [("absent", None, 1, None), ("true", True, 4, None), ("false/local", False, 0, None),
                                    ("false/one", False, 1, "1 sentinel id(s)"), ("false/all", False, 4, "4 sentinel id(s)")]:
            with self.subTest(name):
                c = dict(CAPS)
                if decl is not None:
                    c["sentinels"] = decl
                got = caps.check(c, h, Options(), n)
                if want is None:
                    self.assertIsNone(got)
                else:
                    self.assertIn(want, got or "")
                    self.assertIn("sentinels=false", got or "")


if __name__ == "__main__":
    unittest.main()
