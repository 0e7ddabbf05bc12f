"""Triage on real code: record every aten op of forward and backward and name the first one
whose output turns non-finite while all its floating inputs were finite, with the Python
source line that issued it (forward) or the forward line whose backward it is.

Backward lines come from autograd's anomaly mode, which stores each node's forward traceback
(``torch.autograd.set_detect_anomaly(True)``); where the running torch exposes the current
autograd node (``torch._C._current_autograd_node``) the backward op is named after it.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_TORCH = os.path.dirname(os.path.abspath(torch.__file__))


@dataclass
class OpRecord:
    index: int
    op: str
    rows: List[int]  # first rows (dim 0) holding a non-finite value
    phase: str  # forward | backward
    finite_inputs: bool
    finite_output: bool
    shape: List[int]
    where: str  # file:line (function) of the user/library code that issued it
    node: str = ""  # backward: the autograd node

    def line(self) -> str:
        s = f"#{self.index} {self.phase} {self.op} -> {self.shape}"
        if self.rows:
            s += f" non-finite rows {self.rows}"
        if self.node:
            s += f" [{self.node}]"
        return s + f" at {self.where}"


def _finite(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point() or x.numel() == 0:
            return True
        return bool(torch.isfinite(x).all())
    if isinstance(x, (list, tuple)):
        return all(_finite(v) for v in x)
    return True


def _user_frame(stack: Optional[List[traceback.FrameSummary]] = None) -> str:
    """The innermost frame outside torch and outside moecheck's own plumbing (targets.py,
    triage.py, worker.py); moecheck's ledger counts as user code (it is the code under test)."""
    frames = stack if stack is not None else traceback.extract_stack()
    for f in reversed(frames):
        if f.filename.startswith("<"):
            continue  # <frozen runpy>, <string>: the interpreter's plumbing
        fn = os.path.abspath(f.filename)
        if fn.startswith(_TORCH) or os.sep + "unittest" + os.sep in fn:
            continue
        if fn.startswith(_HERE) and os.path.basename(fn) in ("triage.py", "targets.py", "worker.py", "poison.py"):
            continue
        return f"{f.filename}:{f.lineno} ({f.name}): {(f.line or '').strip()}"
    return "?"


def _node_where() -> tuple:
    cur = getattr(torch._C, "_current_autograd_node", None)
    if cur is None:
        w = _user_frame()
        if w == "?":
            return "", "backward (forward line unknown: this torch exposes no current autograd node)"
        return "", f"backward, in {w}"
    node = cur()
    if node is None:
        return "", _user_frame()
    name = node.name()
    tb = getattr(node, "metadata", {}).get("traceback_") if hasattr(node, "metadata") else None
    if tb:
        # anomaly mode's traceback_ is a list of formatted lines; keep the user frame of it
        lines = [l for l in "".join(tb if isinstance(tb, list) else [str(tb)]).splitlines() if l.strip()]
        where = "?"
        for i in range(len(lines) - 1, -1, -1):
            l = lines[i].strip()
            if l.startswith('File "') and _TORCH not in l and not any(p in l for p in ("triage.py", "targets.py", "worker.py")):
                where = l + (": " + lines[i + 1].strip() if i + 1 < len(lines) else "")
                break
        return name, f"backward of {where}"
    return name, "backward of ? (run with anomaly mode for forward lines)"


# Ops whose output aliases (or is overwritten into) an input: a non-finite value there was
# produced elsewhere.
_ALIASING = {"slice", "select", "view", "_unsafe_view", "as_strided", "t", "transpose", "unsqueeze", "squeeze",
             "expand", "permute", "detach", "alias", "copy_", "fill_", "zero_", "split", "chunk", "unbind",
             "narrow", "_reshape_alias", "reshape", "lift_fresh", "clone", "_to_copy", "index_put_"}


def recorder_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: List[OpRecord] = []
            self.phase = "forward"

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = str(getattr(func, "__name__", func))
            base = name.split(".")[0]
            if base.startswith(("empty", "new_empty")) or base in _ALIASING:
                return out  # allocations (their contents are the poison) and views/copies of them
            fin_in = _finite(list(args)) and _finite(list(kwargs.values()))
            fin_out = _finite(out)
            shape = list(out.shape) if isinstance(out, torch.Tensor) else []
            node = ""
            if self.phase == "backward":
                node, where = _node_where()
            else:
                where = _user_frame()
            rows: List[int] = []
            if not fin_out and isinstance(out, torch.Tensor) and out.dim() >= 1:
                bad = ~torch.isfinite(out.detach())
                if out.dim() > 1:
                    bad = bad.reshape(out.shape[0], -1).any(dim=1)
                rows = [int(i) for i in bad.nonzero().flatten()[:8].tolist()]
            self.ops.append(OpRecord(len(self.ops), name, rows, self.phase, fin_in, fin_out, shape, where, node))
            return out

    return Recorder


@dataclass
class Report:
    ops: List[OpRecord] = field(default_factory=list)
    first: Optional[OpRecord] = None  # first op with finite inputs and a non-finite output
    first_forward: Optional[OpRecord] = None  # first forward op with a non-finite output
    first_backward: Optional[OpRecord] = None  # first backward op with a non-finite output

    def text(self) -> str:
        found = self.first or self.first_forward or self.first_backward
        lines = [f"triage: {'non-finite values found' if found else 'every op output finite'}; "
                 f"{len(self.ops)} aten ops recorded (allocations excluded: their contents are the poison)"]
        if self.first is not None:
            lines.append(f"  first op turning finite inputs non-finite: {self.first.line()}")
        if self.first_forward is not None:
            lines.append(f"  first forward op with a non-finite output: {self.first_forward.line()}")
        if self.first_backward is not None:
            lines.append(f"  first backward op with a non-finite output: {self.first_backward.line()}")
        return "\n".join(lines)


def trace(run_forward, run_backward) -> Report:
    """Runs forward (returning the output) then backward under the recorder, with anomaly
    mode on (forward tracebacks for backward ops), and returns the report."""
    rec = recorder_class()()
    with torch.autograd.set_detect_anomaly(True, check_nan=False) if _anomaly_has_check_nan() else torch.autograd.set_detect_anomaly(True):
        with rec:
            y = run_forward()
            rec.phase = "backward"
            run_backward(y)
    rep = Report(rec.ops)
    for o in rec.ops:
        if o.finite_output:
            continue
        if rep.first is None and o.finite_inputs:
            rep.first = o
        if o.phase == "forward" and rep.first_forward is None:
            rep.first_forward = o
        if o.phase == "backward" and rep.first_backward is None:
            rep.first_backward = o
    return rep


def _anomaly_has_check_nan() -> bool:
    import inspect

    try:
        return "check_nan" in inspect.signature(torch.autograd.set_detect_anomaly).parameters
    except (TypeError, ValueError):
        return False
