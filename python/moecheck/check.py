"""``moecheck.check``: run the moecheck CLI against a PyTorch target and return its verdicts.

The CLI (Go) generates cases, starts ``python3 -m moecheck.worker --target TARGET`` through
``--backend torch:TARGET``, checks every property with the oracle, shrinks a failure and prints
a reproduce line. This wrapper finds the CLI ($MOECHECK_CLI, ``moecheck`` on PATH, or ``go run
./cmd/moecheck`` in a checkout), runs it, and parses its summary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence


@dataclass
class CheckResult:
    passed: bool
    returncode: int  # 0 pass, 1 failures found, 2 usage, 3 internal or device error
    cases: int = 0
    failures: int = 0
    unsupported: int = 0
    failing: List[Dict[str, str]] = field(default_factory=list)  # property, spec, shrunk, reproduce
    output: str = ""

    def __bool__(self) -> bool:
        return self.passed


def _repo_root() -> Optional[str]:
    d = os.path.dirname(os.path.abspath(__file__))
    for _ in range(4):
        d = os.path.dirname(d)
        if os.path.exists(os.path.join(d, "cmd", "moecheck", "main.go")):
            return d
    return None


def cli_command() -> List[str]:
    """argv prefix of the moecheck CLI."""
    env = os.environ.get("MOECHECK_CLI")
    if env:
        return env.split()
    exe = shutil.which("moecheck")
    if exe:
        return [exe]
    root = _repo_root()
    if root and shutil.which("go"):
        return ["go", "run", os.path.join(root, "cmd", "moecheck")]
    raise FileNotFoundError("moecheck CLI not found: set MOECHECK_CLI, put moecheck on PATH, or run from a checkout with Go")


_SUMMARY = re.compile(r"^(\d+)\s+(\d+)\s+\S+\s+[\d.]+\s*$", re.M)
_UNSUPPORTED = re.compile(r"unsupported[^\d]*(\d+)", re.I)


def parse_output(out: str, rc: int) -> CheckResult:
    r = CheckResult(passed=rc == 0, returncode=rc, output=out)
    m = _SUMMARY.search(out)
    if m:
        r.cases, r.failures = int(m.group(1)), int(m.group(2))
    m = re.search(r"^unsupported cases:\s+(\d+)", out, re.M)
    if m:
        r.unsupported = int(m.group(1))
    cur: Optional[Dict[str, str]] = None
    for line in out.splitlines():
        s = line.strip()
        fm = re.match(r"FAIL case (\d+): property (\S+)", s)
        if fm:
            cur = {"case": fm.group(1), "property": fm.group(2)}
            r.failing.append(cur)
            continue
        if cur is not None:
            for key in ("spec", "shrunk", "reproduce", "triage"):
                if s.startswith(key + ":"):
                    cur[key] = s[len(key) + 1:].strip()
    return r


def check(target: str, cases: int = 100, seed: int = 1, properties: Optional[Sequence[str]] = None,
          dtypes: Optional[Sequence[str]] = None, extra_args: Sequence[str] = (), python: Optional[str] = None,
          timeout: Optional[float] = None, env: Optional[Dict[str, str]] = None) -> CheckResult:
    """Runs ``moecheck check --backend torch:TARGET`` and returns the parsed verdicts.

    target: ``transformers:grouped_mm``, ``callable:my_module:my_experts``, ``ledger:...``.
    python: the interpreter for the worker (default: this one, via MOECHECK_PYTHON)."""
    argv = cli_command() + ["check", "--backend", f"torch:{target}", "--cases", str(cases), "--seed", str(seed)]
    if properties:
        argv += ["--properties", ",".join(properties)]
    if dtypes:
        argv += ["--dtype", ",".join(dtypes)]
    argv += list(extra_args)
    e = dict(os.environ if env is None else env)
    e.setdefault("MOECHECK_PYTHON", python or sys.executable)
    # The CLI runs in the checkout; the worker must still import this package and the
    # caller's modules: absolute paths, the caller's directory included.
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [pkg_root, os.getcwd()] + [os.path.abspath(p) for p in e.get("PYTHONPATH", "").split(os.pathsep) if p]
    e["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout, cwd=_repo_root())
    return parse_output(p.stdout + p.stderr, p.returncode)
