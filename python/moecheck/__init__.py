"""moecheck for PyTorch: verify MoE experts implementations (transformers' experts interface,
your own kernels) with moecheck's properties, oracle and poisoning.

- ``python3 -m moecheck.worker --target NAME`` serves the worker protocol (the Go CLI starts
  it with ``moecheck check --backend torch:NAME``);
- ``python3 -m moecheck.preflight`` proves that poisoning covers every allocation size here;
- ``moecheck.check(target, ...)`` runs the Go CLI on a target and returns its verdicts.

Needs torch; transformers only for ``transformers:`` targets. See docs/python.md.
"""

from .check import CheckResult, check

__all__ = ["check", "CheckResult"]
__version__ = "0.2.0"
