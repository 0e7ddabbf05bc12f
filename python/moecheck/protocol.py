"""The moecheck worker protocol (docs/gpu.md, "Worker and protocol"): frames, tensors, headers.

A frame is ``uint32 header_length | header JSON | uint64 payload_length | payload``, all
integers little-endian. Floating-point tensors travel as their raw storage bits (bf16 and fp16
as 2 bytes, fp32 as 4), so NaN payloads survive both ways. This module needs only the standard
library and torch; it mirrors gpu/worker/protocol.go and gpu/worker/codec.go, and the tests in
python/tests check it against the Go codec byte for byte.
"""

from __future__ import annotations

import ctypes
import json
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import torch

PROTO = "moecheck-worker"
VERSION = 2  # what this worker speaks; a client that only knows 1 gets version 1 (see worker.py)
SUPPORTED_VERSIONS = (1, 2)

MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 34

# Error kinds (gpu/worker/protocol.go). "raised" is new in version 2: the path raised a
# Python exception; the case fails with it and the worker stays alive.
KIND_CRASH = "crash"
KIND_TIMEOUT = "timeout"
KIND_OOM = "oom"
KIND_BAD_REQUEST = "bad_request"
KIND_INTERNAL = "internal"
KIND_RAISED = "raised"
KIND_UNSUPPORTED = "unsupported"

WIRE_DTYPES: Dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
    "i32": torch.int32,
    "i64": torch.int64,
}
# The integer dtype whose bits a wire dtype travels as (same element size).
_BITS_DTYPE: Dict[str, torch.dtype] = {
    "bf16": torch.int16,
    "fp16": torch.int16,
    "fp32": torch.int32,
    "i32": torch.int32,
    "i64": torch.int64,
}
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "i32": 4, "i64": 8}


class ProtocolError(Exception):
    """Bytes that are not a frame, or a frame that does not decode (a bad request)."""


@dataclass
class Frame:
    header: Dict[str, Any]
    payload: bytes = b""


def read_exact(r: BinaryIO, n: int) -> bytes:
    """Reads exactly n bytes; EOFError when r ends first (at 0 bytes: a clean end)."""
    chunks = []
    got = 0
    while got < n:
        b = r.read(n - got)
        if not b:
            if got == 0:
                raise EOFError("end of stream")
            raise ProtocolError(f"stream ended inside a frame ({got} of {n} bytes)")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_frame(r: BinaryIO) -> Optional[Frame]:
    """Reads one frame; None at a clean end of the stream (EOF before a frame)."""
    try:
        n = read_exact(r, 4)
    except EOFError:
        return None
    (hl,) = struct.unpack("<I", n)
    if hl == 0 or hl > MAX_HEADER_BYTES:
        raise ProtocolError(f"header length {hl} outside [1, {MAX_HEADER_BYTES}]")
    try:
        hb = read_exact(r, hl)
        (pl,) = struct.unpack("<Q", read_exact(r, 8))
    except EOFError as e:
        raise ProtocolError("stream ended inside a frame") from e
    if pl > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload length {pl} exceeds the limit {MAX_PAYLOAD_BYTES}")
    try:
        header = json.loads(hb.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"header: {e}") from e
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    try:
        payload = read_exact(r, pl) if pl else b""
    except EOFError as e:
        raise ProtocolError("stream ended inside a payload") from e
    return Frame(header, payload)


def write_frame(w: BinaryIO, f: Frame) -> None:
    h = json.dumps(f.header, separators=(",", ":")).encode("utf-8")
    if len(h) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(h)} bytes exceeds the limit {MAX_HEADER_BYTES}")
    w.write(struct.pack("<I", len(h)))
    w.write(h)
    w.write(struct.pack("<Q", len(f.payload)))
    if f.payload:
        w.write(f.payload)
    w.flush()


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The little-endian storage bytes of a tensor (copied to a contiguous CPU tensor)."""
    t = t.detach().to("cpu").contiguous()
    n = t.numel() * t.element_size()
    if n == 0:
        return b""
    return ctypes.string_at(t.data_ptr(), n)


def decode_tensor(payload: bytes, th: Dict[str, Any]) -> torch.Tensor:
    """Decodes one tensor a header lists (name, dtype, shape, offset, bytes), checking its
    placement and size; the result is a CPU tensor of the wire dtype with the exact bits."""
    name = th.get("name")
    dt = th.get("dtype")
    if dt not in WIRE_DTYPES:
        raise ProtocolError(f"tensor {name!r}: unknown dtype {dt!r}")
    shape = th.get("shape") or []
    if not isinstance(shape, list) or any((not isinstance(s, int)) or s < 0 for s in shape):
        raise ProtocolError(f"tensor {name!r}: bad shape {shape!r}")
    off, nb = th.get("offset"), th.get("bytes")
    if not isinstance(off, int) or not isinstance(nb, int) or off < 0 or nb < 0 or off + nb > len(payload):
        raise ProtocolError(f"tensor {name!r} at [{off}, +{nb}) outside the payload of {len(payload)} bytes")
    n = 1
    for s in shape:
        n *= s
    if n * ELEMENT_BYTES[dt] != nb:
        raise ProtocolError(f"tensor {name!r} has {nb} bytes, want {n * ELEMENT_BYTES[dt]} ({n} x {dt})")
    if n == 0:
        return torch.empty(shape, dtype=WIRE_DTYPES[dt])
    raw = bytearray(payload[off : off + nb])
    bits = torch.frombuffer(raw, dtype=_BITS_DTYPE[dt]).clone()
    return bits.view(WIRE_DTYPES[dt]).reshape(shape)


class PayloadBuilder:
    """Builds a frame payload tensor by tensor (the header's "tensors" list)."""

    def __init__(self) -> None:
        self.headers: List[Dict[str, Any]] = []
        self.parts: List[bytes] = []
        self.size = 0

    def add(self, name: str, dtype: str, t: torch.Tensor, shape: Optional[List[int]] = None) -> None:
        want = WIRE_DTYPES[dtype]
        if t.dtype != want:
            raise ProtocolError(f"tensor {name!r} is {t.dtype}, the wire says {dtype}")
        b = tensor_bytes(t)
        self.headers.append({"name": name, "dtype": dtype, "shape": list(shape if shape is not None else t.shape),
                             "offset": self.size, "bytes": len(b)})
        self.parts.append(b)
        self.size += len(b)

    def payload(self) -> bytes:
        return b"".join(self.parts)


# Case header keys. Version 2 writes snake_case ("t", "h", ..., "ep_world"); version-1
# clients wrote "T", "H", "I", "E", "K". Both are read.
CASE_INT_KEYS = ("t", "h", "i", "e", "k")


@dataclass
class CaseHeader:
    t: int
    h: int
    i: int
    e: int
    k: int
    ep_world: int = 1
    ep_rank: int = 0
    act: str = "swiglu"
    layout: str = "standard"
    dtype: str = "bf16"
    bias: bool = False
    non_finite: bool = False
    global_routing: bool = False
    keep_sentinel_weights: bool = False

    @staticmethod
    def parse(d: Any) -> "CaseHeader":
        if not isinstance(d, dict):
            raise ProtocolError("run request without a case object")
        low = {str(k).lower(): v for k, v in d.items()}
        vals = {}
        for k in CASE_INT_KEYS:
            v = low.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ProtocolError(f"case field {k!r} = {v!r}: want a non-negative integer")
            vals[k] = v
        c = CaseHeader(**vals)
        c.ep_world = int(low.get("ep_world", 1) or 1)
        c.ep_rank = int(low.get("ep_rank", 0) or 0)
        c.act = str(low.get("act", "swiglu"))
        c.layout = str(low.get("layout", "standard"))
        c.dtype = str(low.get("dtype", "bf16"))
        c.bias = bool(low.get("bias", False))
        c.non_finite = bool(low.get("non_finite", False))
        c.global_routing = bool(low.get("global", False))
        c.keep_sentinel_weights = bool(low.get("keep_sentinel_weights", False))
        if c.act not in ("swiglu", "gptoss"):
            raise ProtocolError(f"case act {c.act!r}: want swiglu or gptoss")
        if c.layout not in ("standard", "transposed"):
            raise ProtocolError(f"case layout {c.layout!r}: want standard or transposed")
        if c.dtype not in ("bf16", "fp16", "fp32"):
            raise ProtocolError(f"case dtype {c.dtype!r}: want bf16, fp16 or fp32")
        if min(c.t, c.h, c.i, c.e, c.k) < 1:
            raise ProtocolError(f"case sizes T={c.t} H={c.h} I={c.i} E={c.e} K={c.k}: each must be at least 1")
        return c

    def to_json(self, version: int = VERSION) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        for k in CASE_INT_KEYS:
            d[k.upper() if version == 1 else k] = getattr(self, k)
        d.update({"ep_world": self.ep_world, "ep_rank": self.ep_rank, "act": self.act, "layout": self.layout,
                  "dtype": self.dtype, "bias": self.bias, "non_finite": self.non_finite,
                  "global": self.global_routing, "keep_sentinel_weights": self.keep_sentinel_weights})
        return d


@dataclass
class Options:
    poison: str = "zeros"
    poison_seed: int = 0
    faults: List[str] = field(default_factory=list)
    stages: bool = False

    @staticmethod
    def parse(d: Any) -> "Options":
        if not isinstance(d, dict):
            raise ProtocolError("run request without an options object")
        return Options(poison=str(d.get("poison", "zeros")), poison_seed=int(d.get("poison_seed", 0) or 0),
                       faults=[str(x) for x in (d.get("faults") or [])], stages=bool(d.get("stages", False)))


@dataclass
class Case:
    """A decoded run request: the header, the options and the input tensors (CPU, wire dtypes)."""

    header: CaseHeader
    options: Options
    tensors: Dict[str, torch.Tensor]

    @property
    def slots(self) -> int:
        return self.header.t * self.header.k


def expected_inputs(c: CaseHeader) -> Dict[str, Tuple[str, List[int]]]:
    """The tensors a run request must carry (name → wire dtype and shape), as codec.go sends them."""
    d = c.dtype
    if c.layout == "standard":
        w1, w2 = [c.e, 2 * c.i, c.h], [c.e, c.h, c.i]
    else:
        w1, w2 = [c.e, c.h, 2 * c.i], [c.e, c.i, c.h]
    want = {"x": (d, [c.t, c.h]), "w1": (d, w1), "w2": (d, w2), "dy": (d, [c.t, c.h]),
            "ids": ("i32", [c.t, c.k]), "rw": (d, [c.t, c.k])}
    if c.bias:
        want["b1"] = (d, [c.e, 2 * c.i])
        want["b2"] = (d, [c.e, c.h])
    if c.global_routing:
        want["global_ids"] = ("i64", [c.t, c.k])
        want["global_rw"] = (d, [c.t, c.k])
    return want


def _numel(shape: List[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def decode_request(f: Frame) -> Case:
    """Decodes and validates a run request (ProtocolError = bad_request)."""
    h = f.header
    if h.get("type") != "run":
        raise ProtocolError(f"not a run request (type {h.get('type')!r})")
    ch = CaseHeader.parse(h.get("case"))
    opts = Options.parse(h.get("options"))
    listed = h.get("tensors") or []
    if not isinstance(listed, list):
        raise ProtocolError("tensors is not a list")
    by_name: Dict[str, Dict[str, Any]] = {}
    for th in listed:
        if not isinstance(th, dict) or "name" not in th:
            raise ProtocolError("a tensor entry without a name")
        if th["name"] in by_name:
            raise ProtocolError(f"tensor {th['name']!r} given twice")
        by_name[th["name"]] = th
    out: Dict[str, torch.Tensor] = {}
    for name, (dt, shape) in expected_inputs(ch).items():
        th = by_name.get(name)
        if th is None:
            raise ProtocolError(f"tensor {name!r} missing")
        if th.get("dtype") != dt:
            raise ProtocolError(f"tensor {name!r} has dtype {th.get('dtype')}, want {dt}")
        t = decode_tensor(f.payload, th)
        if t.numel() != _numel(shape):
            raise ProtocolError(f"tensor {name!r} has {t.numel()} elements, want {_numel(shape)}")
        out[name] = t.reshape(shape)
    ids = out["ids"]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > ch.e):
        raise ProtocolError(f"ids outside [0, {ch.e}] (E = {ch.e} is the sentinel)")
    return Case(ch, opts, out)


def encode_request(req_id: int, c: CaseHeader, o: Options, tensors: Dict[str, torch.Tensor],
                   version: int = VERSION) -> Frame:
    """Builds a run request (the client side; used by the tests and by moecheck.check)."""
    pb = PayloadBuilder()
    for name, (dt, shape) in expected_inputs(c).items():
        pb.add(name, dt, tensors[name].reshape(shape))
    hdr = {"type": "run", "id": req_id, "case": c.to_json(version),
           "options": {"poison": o.poison, "poison_seed": o.poison_seed, "faults": list(o.faults), "stages": o.stages},
           "tensors": pb.headers}
    return Frame(hdr, pb.payload())


RESULT_NAMES = ("y", "dx", "dw1", "db1", "dw2", "db2", "drw")


def encode_result(req_id: int, c: CaseHeader, results: Dict[str, torch.Tensor],
                  extra: Optional[Dict[str, Any]] = None) -> Frame:
    """Builds a result frame: y, dx, dw1, dw2, drw (and db1, db2 with bias) in the case dtype,
    flat, in the case's layout. extra adds header fields (version 2: "triage", "notes")."""
    pb = PayloadBuilder()
    for name in RESULT_NAMES:
        t = results.get(name)
        if t is None:
            continue
        pb.add(name, c.dtype, t.reshape(-1), [t.numel()])
    hdr: Dict[str, Any] = {"type": "result", "id": req_id, "tensors": pb.headers}
    if extra:
        hdr.update(extra)
    return Frame(hdr, pb.payload())


def error_frame(req_id: int, kind: str, detail: str, extra: Optional[Dict[str, Any]] = None) -> Frame:
    hdr: Dict[str, Any] = {"type": "error", "id": req_id, "kind": kind, "detail": detail}
    if extra:
        hdr.update(extra)
    return Frame(hdr)
