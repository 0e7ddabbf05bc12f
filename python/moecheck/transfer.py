"""Host↔device transfers of one run, and how the host waits for the device.

A run's inputs (weights, biases, x, ids, rw, dy: six to eight tensors) went to the device one
``.to(device)`` at a time from pageable host memory. A copy from pageable memory synchronises
the stream before it starts, so every run waited for the device six to eight times before its
forward began; with several worker processes time-slicing one GPU each of those waits can last
a time slice. ``Staging`` packs them into one pinned host buffer per lane (kept and grown) and
sends it with one asynchronous copy; the results come back the same way (one device buffer,
one asynchronous copy into a pinned buffer, one wait).

``SyncMode`` says how the host waits: ``spin`` (CUDA's default with fewer busy contexts than
cores: the waiting thread spins on a core) or ``blocking`` (the thread sleeps until the device
signals: the worker's waits on its run's event, and, where the driver allows it, every wait of
the process, including the implicit ones inside the path under test, through the primary
context's scheduling flag). Several workers whose lanes all spin can occupy every core of the
host while they wait for a GPU they share; blocking frees those cores at a small wake-up cost.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Dict, List, Optional

import torch

SYNC_MODES = ("spin", "blocking")
# pinned: Staging (one copy each way per run); pageable: a .to(device) per tensor, as before
# (kept to measure the difference: moecheck.bench --transfer, the worker's --transfer)
TRANSFERS = ("pinned", "pageable")

# CUDA driver API: CU_CTX_SCHED_BLOCKING_SYNC (cuda.h).
_CU_CTX_SCHED_BLOCKING_SYNC = 0x04
_ALIGN = 64  # bytes: every tensor of a staging buffer starts at a multiple (any dtype's alignment)


def set_blocking_sync(device: torch.device) -> str:
    """Asks the driver to make every host wait of this process on device's primary context a
    blocking (sleeping) wait: cuDevicePrimaryCtxSetFlags(dev, CU_CTX_SCHED_BLOCKING_SYNC).
    Returns "" on success, else why not (the worker's own waits block anyway: Staging's
    events are created blocking)."""
    if device.type != "cuda":
        return "not a CUDA device"
    if getattr(torch.version, "hip", None):
        return "ROCm: no CUDA driver API"
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return f"libcuda.so.1: {e}"
    try:
        if lib.cuInit(0) != 0:
            return "cuInit failed"
        dev = ctypes.c_int(0)
        # the ordinal torch uses is the runtime's; with CUDA_VISIBLE_DEVICES both number the
        # visible devices alike. (No torch.cuda call here: it must run before torch initialises
        # CUDA, e.g. before the poisoning allocator is installed.)
        idx = device.index if device.index is not None else 0
        if lib.cuDeviceGet(ctypes.byref(dev), ctypes.c_int(idx)) != 0:
            return f"cuDeviceGet({idx}) failed"
        rc = lib.cuDevicePrimaryCtxSetFlags_v2(dev, ctypes.c_uint(_CU_CTX_SCHED_BLOCKING_SYNC)) \
            if hasattr(lib, "cuDevicePrimaryCtxSetFlags_v2") else \
            lib.cuDevicePrimaryCtxSetFlags(dev, ctypes.c_uint(_CU_CTX_SCHED_BLOCKING_SYNC))
        if rc != 0:
            return f"cuDevicePrimaryCtxSetFlags returned {rc}"
    except AttributeError as e:
        return f"driver API: {e}"
    return ""


def configure(device: torch.device, sync: str = "blocking", how: str = "pinned") -> "Stagings":
    """A process's Stagings for device under a host-wait mode (SYNC_MODES) and a transfer
    (TRANSFERS), with the note the worker's hello shows. Call it before CUDA is initialised
    (before the poisoning allocator is installed): blocking asks the driver for blocking
    waits of the whole process (set_blocking_sync), which it grants only then."""
    note = ""
    if device.type == "cuda":
        note = sync
        if sync == "blocking":
            why = set_blocking_sync(device)
            if why:
                note = f"blocking (run waits only; process-wide: {why})"
        note += f", {how} transfers"
    return Stagings(blocking=sync == "blocking", pinned=how == "pinned", note=note)


class Staging:
    """One lane's pinned host buffers: inputs go to the device, results come back, each with
    one asynchronous copy. Not shared between threads (the worker keeps one per lane thread:
    Stagings)."""

    def __init__(self, device: torch.device, blocking: bool) -> None:
        self.device = device
        self.blocking = blocking
        self._in: Optional[torch.Tensor] = None
        self._out: Optional[torch.Tensor] = None
        self._in_done = torch.cuda.Event(blocking=blocking)  # the last upload's copy has finished
        self._out_done = torch.cuda.Event(blocking=blocking)
        self._uploaded = False

    @staticmethod
    def _host(buf: Optional[torch.Tensor], n: int) -> torch.Tensor:
        if buf is None or buf.numel() < n:
            buf = torch.empty(max(n, 2 * (buf.numel() if buf is not None else 0), 1 << 16),
                              dtype=torch.uint8, pin_memory=True)
        return buf

    def upload(self, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        """The tensors (on the CPU) on the device, with one copy on the current stream; the
        returned tensors are views of one device buffer (same dtypes and shapes). The bytes
        are packed by element size, widest first, so every view starts at a multiple of its
        element size without padding (one torch.cat into the pinned buffer)."""
        order = sorted(range(len(tensors)), key=lambda k: -tensors[k].element_size())
        flat = [tensors[k].reshape(-1).view(torch.uint8) for k in order]
        sizes = [f.numel() for f in flat]
        n = sum(sizes)
        if self._uploaded:
            self._in_done.synchronize()  # the previous copy has read the buffer (a run that raised)
        self._in = self._host(self._in, n)
        torch.cat(flat, out=self._in[:n])
        dev = self._in[:n].to(self.device, non_blocking=True)
        self._in_done.record()
        self._uploaded = True
        out: List[Optional[torch.Tensor]] = [None] * len(tensors)
        for k, part in zip(order, torch.split(dev, sizes)):
            t = tensors[k]
            out[k] = part.view(t.dtype).view(t.shape)
        return out  # type: ignore[return-value]

    def download(self, flat: torch.Tensor) -> torch.Tensor:
        """flat (a 1-D device tensor) on the CPU: one asynchronous copy into the pinned buffer
        on the current stream, one wait for it (a device fault raises here), then a host copy
        of its own (the pinned buffer is reused by the next run)."""
        nb = flat.numel() * flat.element_size()
        self._out = self._host(self._out, nb)
        host = self._out[:nb].view(flat.dtype)
        host.copy_(flat, non_blocking=True)
        self._out_done.record()
        self._out_done.synchronize()
        return host.clone()


class Stagings:
    """The Staging of each thread (a worker's lanes are threads): created on first use."""

    def __init__(self, blocking: bool = False, note: str = "", pinned: bool = True) -> None:
        self.blocking = blocking
        self.pinned = pinned  # False: prepare and collect copy tensor by tensor (pageable)
        self.note = note  # how the host waits, for the worker's hello ("" on the CPU)
        self._by_thread: Dict[int, Staging] = {}
        self._lock = threading.Lock()

    def get(self, device: torch.device) -> Staging:
        k = threading.get_ident()
        s = self._by_thread.get(k)
        if s is None:
            with self._lock:
                s = self._by_thread.setdefault(k, Staging(device, self.blocking))
        return s
