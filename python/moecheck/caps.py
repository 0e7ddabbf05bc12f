"""Capabilities (protocol version 2): what a worker's target supports, and the check of a case
against them. Mirrors gpu/worker/caps.go; the tests compare both on the same cases.

JSON (the hello's "capabilities" object)::

    {"dtypes": ["bf16", ...],                      # case dtypes
     "variants": [{"act": "swiglu", "layout": "standard", "bias": false}, ...],
     "ep_global_routing": false,                   # cases carrying global routing tensors
     "align": {"bf16": {"h": 8, "i": 8}},          # H and I must be multiples (per dtype)
     "non_finite": true,                           # cases with NaN/Inf inputs
     "sentinels": true,                            # sentinel ids (id E); absent = true
     "poisons": ["zeros", "nan", ...],             # poison policies honoured
     "stages": false,                              # stage intermediates in results
     "triage": true,                               # op-level triage on request
     "faults": [],                                 # catalog faults it can switch on
     "contract": "torch"}                          # the oracle contract its results obey
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .protocol import CaseHeader, Options


def check(caps: Dict[str, Any], h: CaseHeader, o: Optional[Options] = None, sentinels: int = 0) -> Optional[str]:
    """None when the case (and options) lie inside caps, else the reason (one line);
    sentinels: the number of sentinel ids in the case's top_k_index."""
    if h.dtype not in caps.get("dtypes", []):
        return f"dtype {h.dtype} not supported (supported: {', '.join(caps.get('dtypes', []))})"
    variants: List[Dict[str, Any]] = caps.get("variants", [])
    if not any(v.get("act") == h.act and v.get("layout") == h.layout and bool(v.get("bias")) == h.bias for v in variants):
        vs = "; ".join(f"{v.get('act')}/{v.get('layout')}/bias={str(bool(v.get('bias'))).lower()}" for v in variants)
        return f"variant {h.act}/{h.layout}/bias={str(h.bias).lower()} not supported (supported: {vs})"
    if h.global_routing and not caps.get("ep_global_routing", False):
        return "EP global routing not supported"
    al = caps.get("align", {}).get(h.dtype)
    if al:
        ah, ai = int(al.get("h", 1) or 1), int(al.get("i", 1) or 1)
        if h.h % ah or h.i % ai:
            return f"H={h.h}, I={h.i}: {h.dtype} needs H a multiple of {ah} and I a multiple of {ai}"
    if h.non_finite and not caps.get("non_finite", True):
        return "non-finite inputs not supported"
    if sentinels and not caps.get("sentinels", True):
        return f"{sentinels} sentinel id(s): the target declares sentinels=false"
    if o is not None:
        if o.poison not in caps.get("poisons", []):
            return f"poison {o.poison} not honoured (honoured: {', '.join(caps.get('poisons', []))})"
        bad = [f for f in o.faults if f not in caps.get("faults", [])]
        if bad:
            return f"faults {', '.join(bad)} not supported"
    return None
