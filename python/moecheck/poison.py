"""Honest poisoning of a PyTorch path: every allocation returns memory filled per policy.

Three mechanisms, chosen per device:

- ``allocator`` (CUDA): a pluggable allocator (csrc/poison_alloc.c, compiled at run time with
  the machine's C compiler and installed with torch.cuda.memory.change_current_allocator)
  replaces the caching allocator. Every device allocation of the process — forward, autograd,
  kernel workspaces, every size class, no small/large pool split — is filled on its stream
  before torch sees it. Policies: zeros, nan, +inf, -inf, huge, signature, stale (a freed
  block of the same size handed back unfilled; otherwise huge). The policy is per CUDA stream
  (a worker's lanes each run on their own stream), and a freed block is reused only on the
  stream that freed it.
- ``fill-uninitialized`` (CUDA or CPU, torch >= 2.1): torch's own
  ``torch.utils.deterministic.fill_uninitialized_memory`` with deterministic algorithms on;
  fills ``torch.empty`` and friends with NaN (floats) or the largest integer: policy nan only,
  and it switches kernels to their deterministic variants (not the production path).
- ``dispatch`` (CPU, any torch): a TorchDispatchMode that fills the result of every
  ``empty``-family aten op that reaches Python dispatch: tensors the glue, composite ops and
  autograd formulas create. Allocations made inside a C++ kernel are not seen (CPU kernels
  write their outputs fully; the path's unwritten rows come from such empties in the glue).

``python3 -m moecheck.preflight`` proves the chosen mechanism on the machine it runs on.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Dict, Iterator, List, Optional, Tuple

import torch

POLICIES = ("zeros", "nan", "+inf", "-inf", "huge", "stale", "signature")

# Storage bit patterns per policy and dtype (signature: quiet NaN 0x7FC00000 with payload 63
# in mantissa bits 16..21, as gpu.SignatureNaN places a buffer id; bf16 keeps the top half,
# fp16 0x7E00 | 63<<3).
_PATTERNS: Dict[str, Dict[str, Tuple[int, int]]] = {
    # dtype: (bits, width)
    "zeros": {"bf16": (0, 2), "fp16": (0, 2), "fp32": (0, 4)},
    "nan": {"bf16": (0x7FC0, 2), "fp16": (0x7E00, 2), "fp32": (0x7FC00000, 4)},
    "+inf": {"bf16": (0x7F80, 2), "fp16": (0x7C00, 2), "fp32": (0x7F800000, 4)},
    "-inf": {"bf16": (0xFF80, 2), "fp16": (0xFC00, 2), "fp32": (0xFF800000, 4)},
    "huge": {"bf16": (0x7F7F, 2), "fp16": (0x7BFF, 2), "fp32": (0x7F7FFFFF, 4)},
    "signature": {"bf16": (0x7FFF, 2), "fp16": (0x7FF8, 2), "fp32": (0x7FFF0000, 4)},
}

DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
TORCH_DTYPES = {v: k for k, v in DTYPE_NAMES.items()}


def pattern(policy: str, dtype: str) -> Tuple[int, int]:
    """The fill bits and width (bytes) of a policy for a dtype (stale: huge, its first fill)."""
    p = "huge" if policy == "stale" else policy
    if p not in _PATTERNS:
        raise ValueError(f"unknown poison policy {policy!r} (want one of {', '.join(POLICIES)})")
    return _PATTERNS[p][dtype]


def fill_value(policy: str, dtype: torch.dtype) -> torch.Tensor:
    """A one-element tensor of dtype holding the policy's bits (for filling on the CPU)."""
    bits, width = pattern(policy, DTYPE_NAMES[dtype])
    it = torch.int16 if width == 2 else torch.int32
    if bits >= 1 << (8 * width - 1):
        bits -= 1 << (8 * width)
    return torch.tensor([bits], dtype=it).view(dtype)


def fill_tensor(t: torch.Tensor, policy: str, fdtype: torch.dtype) -> None:
    """Fills t (any dtype) per policy, reading the case's float dtype for the bit pattern:
    float tensors of the case dtype get the exact bits; other float dtypes the same value;
    integer tensors the pattern's bits (garbage indices, as uninitialized memory holds)."""
    if t.numel() == 0:
        return
    with torch.no_grad():
        if t.dtype in DTYPE_NAMES:
            v = fill_value(policy, fdtype)
            if t.dtype == fdtype and t.is_contiguous():
                bits = v.view(torch.int16 if v.element_size() == 2 else torch.int32)
                t.view(bits.dtype).fill_(int(bits.item()))
            else:
                t.fill_(float(v.float().item()))
        elif t.dtype == torch.bool:
            t.fill_(policy != "zeros")
        elif not t.is_floating_point() and not t.is_complex():
            if policy == "zeros":
                t.zero_()
            else:
                t.fill_(torch.iinfo(t.dtype).max)
        else:
            t.fill_(float("nan") if policy != "zeros" else 0.0)


# --- the CPU dispatch mode ---------------------------------------------------------------

def _empty_ops() -> List[object]:
    a = torch.ops.aten
    ops = []
    for name, overloads in (("empty", ("memory_format",)), ("empty_strided", ("default",)),
                            ("new_empty", ("default",)), ("new_empty_strided", ("default",)),
                            ("empty_like", ("default",))):
        packet = getattr(a, name, None)
        if packet is None:
            continue
        for ov in overloads:
            op = getattr(packet, ov, None)
            if op is not None:
                ops.append(op)
    return ops


def dispatch_mode_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class PoisonEmpties(TorchDispatchMode):
        """Fills the result of every empty-family op per policy; counts what it filled."""

        def __init__(self, policy: str, dtype: torch.dtype) -> None:
            super().__init__()
            self.policy = policy
            self.dtype = dtype
            self.filled = 0
            self.ops = set(_empty_ops())
            self.stale: Dict[Tuple[str, Tuple[int, ...]], torch.Tensor] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in self.ops and isinstance(out, torch.Tensor):
                self.filled += 1
                fill_tensor(out, self.policy, self.dtype)
            return out

    return PoisonEmpties


# --- the CUDA pluggable allocator ----------------------------------------------------------

class Allocator:
    """The compiled poisoning allocator, installed in this process."""

    def __init__(self, lib_path: str) -> None:
        self.path = lib_path
        self.lib = ctypes.CDLL(lib_path)
        self.lib.moecheck_set_policy.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_int]
        self.lib.moecheck_set_policy.restype = ctypes.c_int
        self.lib.moecheck_stats.argtypes = [ctypes.POINTER(ctypes.c_ulonglong)]
        for f in (self.lib.moecheck_release_stream, self.lib.moecheck_cached_blocks):
            f.argtypes = [ctypes.c_int, ctypes.c_void_p]
            f.restype = ctypes.c_int
        self.policy = "zeros"

    def set_policy(self, policy: str, dtype: str, stream: int = 0) -> None:
        """Sets the policy of the allocations made on stream (a cudaStream_t as an integer,
        torch.cuda.Stream.cuda_stream; 0: the default policy, which streams without their own
        follow). A worker's lanes each set their own stream's policy, so concurrent cases are
        poisoned each per its own policy."""
        bits, width = pattern(policy, dtype)
        hb, _ = pattern("huge", dtype)
        if self.lib.moecheck_set_policy(stream or None, bits, width, hb | (hb << 16) if width == 2 else hb,
                                        1 if policy == "stale" else 0) != 0:
            raise RuntimeError("poisoning allocator: too many streams with their own policy (limit 1023)")
        if not stream:
            self.policy = policy

    def stats(self) -> Dict[str, int]:
        a = (ctypes.c_ulonglong * 4)()
        self.lib.moecheck_stats(a)
        return {"allocations": a[0], "filled": a[1], "stale": a[2], "failed": a[3]}

    def release_cached(self) -> None:
        """Releases every stream's cached blocks to the driver."""
        self.lib.moecheck_release_cached()

    def release_stream(self, stream: int, device: int) -> int:
        """Releases the cached free blocks of one stream (a cudaStream_t as an integer; 0: the
        default stream) on one device to the driver and returns how many; other streams' blocks
        stay. Synchronise the stream first (forget_stream does): a freed block may still be read
        by work queued on it."""
        n = self.lib.moecheck_release_stream(device, stream or None)
        if n < 0:
            raise RuntimeError("poisoning allocator: cannot resolve the CUDA entry points to release blocks")
        return n

    def cached_blocks(self, stream: int, device: int) -> int:
        """The number of cached free blocks of one stream on one device."""
        return self.lib.moecheck_cached_blocks(device, stream or None)


_INSTALLED: Optional[Allocator] = None  # one per process: the allocator cannot be swapped back


def compile_allocator(cache_dir: Optional[str] = None, cc: Optional[str] = None) -> str:
    """Compiles csrc/poison_alloc.c with the machine's C compiler into cache_dir (default
    $MOECHECK_CACHE or ~/.cache/moecheck) and returns the shared library's path."""
    src = os.path.join(os.path.dirname(__file__), "csrc", "poison_alloc.c")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    d = cache_dir or os.environ.get("MOECHECK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "moecheck")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, f"poison_alloc-{digest}.so")
    if os.path.exists(out):
        return out
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        raise RuntimeError("no C compiler (cc, gcc, clang) to build the poisoning allocator; set CC")
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=d)
    os.close(fd)
    r = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", tmp, src, "-ldl", "-lpthread"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"compiling the poisoning allocator failed ({compiler}): {r.stderr.strip()}")
    os.replace(tmp, out)
    return out


def install_allocator() -> Allocator:
    """Compiles (once) and installs the poisoning allocator; must run before the process's
    first CUDA allocation. Returns the installed allocator (the same one on later calls)."""
    global _INSTALLED
    if _INSTALLED is not None:
        return _INSTALLED
    path = compile_allocator()
    alloc = torch.cuda.memory.CUDAPluggableAllocator(path, "moecheck_malloc", "moecheck_free")
    torch.cuda.memory.change_current_allocator(alloc)
    _INSTALLED = Allocator(path)
    return _INSTALLED


def installed() -> Optional[Allocator]:
    return _INSTALLED


def forget_stream(device: torch.device) -> int:
    """What the installed allocator keeps for the current stream of device, dropped (a lane's
    forget request): the stream is synchronised, its cached free blocks are released to the
    driver (the stale policy's next allocation there is a fresh block, filled with the huge
    pattern, as in a fresh worker), and its policy is reset to zeros (a fresh stream's).
    Other streams' blocks and policies stay. Returns the number of blocks released (0 without
    the allocator)."""
    a = _INSTALLED
    if a is None:
        return 0
    s = torch.cuda.current_stream(device)
    s.synchronize()  # work queued on the stream may still read a block it freed
    ptr = int(s.cuda_stream)
    n = a.release_stream(ptr, device.index if device.index is not None else torch.cuda.current_device())
    a.set_policy("zeros", "fp32", ptr)
    return n


def methods_available(device: str) -> List[str]:
    """The poisoning mechanisms usable here, best first."""
    m = []
    if device.startswith("cuda"):
        m.append("allocator")
    if hasattr(torch.utils, "deterministic") and hasattr(torch.utils.deterministic, "fill_uninitialized_memory"):
        m.append("fill-uninitialized")
    if device == "cpu":
        m.append("dispatch")
    return m


def policies_of(method: str) -> List[str]:
    """The policies a mechanism honours."""
    if method in ("allocator", "dispatch"):
        return list(POLICIES) if method == "allocator" else [p for p in POLICIES if p != "stale"]
    if method == "fill-uninitialized":
        return ["zeros", "nan"]  # zeros: the mechanism off (fresh memory semantics are not promised)
    return ["zeros"]


_GLOBAL_FLAGS = threading.Lock()  # fill-uninitialized sets process-wide flags
# Python dispatch from several threads at once is not safe in every torch: torch 1.13 (the
# CPU's Debian torch, where the dispatch mode is the poisoning) failed one CI run of the
# lanes with "expected != self_interpreter INTERNAL ASSERT FAILED at c10/core/PyHandleCache.h:63"
# inside a lane's forward. On the CPU lanes gain nothing anyway (the path is the CPU's work),
# so cases under the dispatch mode take turns.
_DISPATCH = threading.Lock()


@contextlib.contextmanager
def _fill_uninitialized(policy: str) -> Iterator[None]:
    det = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    on = policy == "nan"
    torch.use_deterministic_algorithms(on or det, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = on
    try:
        yield None
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.use_deterministic_algorithms(det, warn_only=True)


@contextlib.contextmanager
def poisoned(method: str, policy: str, dtype: torch.dtype) -> Iterator[object]:
    """Runs the body with every allocation filled per policy (see the module doc)."""
    dname = DTYPE_NAMES[dtype]
    if method == "allocator":
        a = _INSTALLED
        if a is None:
            raise RuntimeError("the poisoning allocator is not installed (install_allocator() at start-up)")
        # The current stream's policy: a lane's cases run on the lane's stream (0 = the default
        # stream, the default policy, as a worker without lanes has it).
        s = int(torch.cuda.current_stream().cuda_stream)
        a.set_policy(policy, dname, s)
        try:
            yield a
        finally:
            if policy != "stale":
                a.set_policy("zeros", dname, s)
        return
    if method == "fill-uninitialized":
        # Process-wide flags: concurrent cases (a worker's lanes) take turns.
        with _GLOBAL_FLAGS:
            with _fill_uninitialized(policy):
                yield None
        return
    if method == "dispatch":
        if policy == "zeros":
            # zeros is "fresh memory"; filling with zeros is the honest CPU model of it.
            pass
        mode = dispatch_mode_class()(policy, dtype)
        with _DISPATCH, mode:  # one case at a time (see _DISPATCH)
            yield mode
        return
    if method == "none":
        yield None
        return
    raise ValueError(f"unknown poisoning method {method!r}")
