"""The moecheck worker for PyTorch targets: ``python3 -m moecheck.worker --target NAME``.

Serves the worker protocol (docs/gpu.md, docs/python.md) on stdin/stdout: a hello with the
target's capabilities (version 2) or the version-1 hello (``--protocol 1``), then one result or
error per run request. A Python exception in the target answers an error of kind ``raised``
(version 2) with the exception and its traceback, and the worker goes on; a CUDA fault (the
context is lost) answers ``crash`` and exits with status 3. File descriptor 1 is moved to
stderr at start-up, so prints of the code under test cannot corrupt the frames.

Lanes (docs/gpu.md "Lanes", docs/python.md "Lanes: several jobs in one PyTorch worker"): with ``MOECHECK_WORKER_LANES=N`` in
its environment (how the Go client asks) the worker serves N lanes: lane 0 on stdin/stdout,
lane k on the inherited pipes of file descriptors 2k+1 (requests) and 2k+2 (replies). Each
lane is a thread with its own hello (``"lanes": N``), its own torch.cuda.Stream (every case of
the lane runs on it, and its results are synchronised on it before they are encoded), its own
experts modules and its own poison policy (the allocator's policy is per stream). They share
the process, its CUDA context and the GIL. A CUDA fault in any lane loses the context of all:
the lane answers crash and the process exits at once (status 3), which the client sees on
every lane with a case in flight and answers by re-running those cases alone. A lane that
ends with an error of its own (a malformed frame, an internal error) also ends the process
with its status, as the Go worker's ServeLanes does; a lane's bye or end of input ends that
lane only.

Forget (docs/gpu.md "Forget"): the hello declares ``"forget": true``; a request
``{"type":"forget","id":N}`` drops what the lane carries from the cases before (``forget``:
its cached experts modules and their gradients; under the ``allocator`` method its stream's
cached free blocks, which the ``stale`` policy would hand back, and its stream's policy) and
is answered ``{"type":"forgot","id":N}``. The worker does the same after its start-up probe,
so a fresh worker and a lane after a forget start alike.

Exit status: 0 after bye or EOF, 2 usage (a target that does not resolve), 3 internal or
device error.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import stat
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import torch

from . import caps as capsmod
from . import poison, protocol, targets, transfer, triage
from .protocol import Frame, ProtocolError


LANES_ENV = "MOECHECK_WORKER_LANES"
SYNC_ENV = "MOECHECK_WORKER_SYNC"  # the default of --sync (spin or blocking)
TRANSFER_ENV = "MOECHECK_WORKER_TRANSFER"  # the default of --transfer (pinned or pageable)
MAX_LANES = 256  # internal/worker MaxLanes


def _device_description(device: torch.device) -> str:
    v = f"torch {torch.__version__}"
    tf = sys.modules.get("transformers")  # only when a transformers: target imported it (costly)
    if tf is not None:
        v += f", transformers {getattr(tf, '__version__', '?')}"
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} (sm_{p.major}{p.minor}), {v}"
    return f"cpu, {v}"


def _probe_case(h: protocol.CaseHeader, sentinels: bool = True) -> protocol.Case:
    """A small deterministic case of header h; sentinels: some slots carry the sentinel id E."""
    g = torch.Generator().manual_seed(1)
    d = targets.DTYPES[h.dtype]
    t: Dict[str, torch.Tensor] = {}
    for name, (dt, shape) in protocol.expected_inputs(h).items():
        if dt == "i32":
            ids = torch.arange(h.t * h.k, dtype=torch.int32).reshape(h.t, h.k) % (h.e + 1 if sentinels else h.e)
            t[name] = ids
        elif dt == "i64":
            t[name] = torch.zeros(shape, dtype=torch.int64)
        else:
            t[name] = (torch.randn(shape, generator=g) * 0.5).to(d)
    return protocol.Case(h, protocol.Options(), t)


def _where(e: BaseException) -> str:
    """file:line of the innermost frame that raised e (for the probe's log)."""
    tb = traceback.extract_tb(e.__traceback__)
    if not tb:
        return "?"
    f = tb[-1]
    return f"{f.filename}:{f.lineno} ({f.name}: {(f.line or '').strip()})"


class ProbeError(Exception):
    """The start-up probe hit a device fault (the worker cannot go on)."""


def probe(target: targets.Target, device: torch.device, method: str, log: BinaryIO) -> Dict[str, Any]:
    """The target's capabilities, narrowed by running one tiny case per dtype and variant:
    a combination that raises is left out, and stderr says which and why (exception, message,
    the line that raised). The probe case routes every slot to a local expert (no sentinel
    ids): what a target does with sentinels is a property the check tests, not a capability;
    a target that raises on them fails those cases (kind raised) instead of vanishing here."""
    caps = dict(target.capabilities)
    caps["poisons"] = [p for p in poison.policies_of(method)]
    keep_dt, keep_var = set(), []
    dropped = 0
    for v in caps["variants"]:
        ok_any = False
        for dt in caps["dtypes"]:
            al = caps.get("align", {}).get(dt, {})
            h = protocol.CaseHeader(t=3, h=max(8, int(al.get("h", 1) or 1)), i=max(8, int(al.get("i", 1) or 1)), e=2, k=2,
                                    act=v["act"], layout=v["layout"], dtype=dt, bias=bool(v["bias"]))
            what = f"{dt} {v['act']}/{v['layout']}/bias={int(bool(v['bias']))}"
            try:
                targets.run_case(target, _probe_case(h, sentinels=False), device, "none")
                keep_dt.add(dt)
                ok_any = True
            except Exception as e:  # the combination is not supported by this target here
                if _is_device_fault(e, device):
                    # The CUDA context is lost: every later combination would fail too and be
                    # dropped for the wrong reason (how transformers:eager once lost all of them).
                    raise ProbeError(f"probe {target.name} {what}: device fault, the CUDA context is lost: "
                                     f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                                     f"[raised at {_where(e)}]") from e
                dropped += 1
                msg = " | ".join(l.strip() for l in str(e).splitlines() if l.strip())[:400]
                log.write(f"moecheck.worker: probe {target.name} {what}: dropped: {type(e).__name__}: {msg} "
                          f"[raised at {_where(e)}]\n")
        if ok_any:
            keep_var.append(v)
    caps["dtypes"] = [d for d in caps["dtypes"] if d in keep_dt]
    caps["variants"] = keep_var
    if dropped:
        kept = ", ".join(caps["dtypes"]) or "none"
        log.write(f"moecheck.worker: probe {target.name}: {dropped} dtype x variant combination(s) dropped; "
                  f"dtypes kept: {kept}; variants kept: "
                  f"{', '.join(v['act'] + '/' + v['layout'] for v in keep_var) or 'none'}\n")
    return caps


def _is_device_fault(e: BaseException, device: torch.device) -> bool:
    if getattr(e, "moecheck_device_fault", False):  # moecheck.testing's simulated fault
        return True
    if device.type != "cuda":
        return False
    s = str(e)
    return any(k in s for k in ("illegal memory access", "CUDA error", "device-side assert", "unspecified launch failure",
                                "misaligned address", "illegal instruction"))


class Crash:
    """What the lanes of one process share about a lost device. Every reply of a lane is
    written under one lock (write); the first lane that meets a CUDA fault takes the lock for
    good, answers crash on its own stream and ends the process (exit status 3), so no lane
    answers a case after the context was lost (a case that finished on a lost device must not
    be answered as if it ran; the client re-runs every case in flight alone)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self.lock = threading.Lock()

    def write(self, wout: BinaryIO, frame: Frame) -> None:
        """Writes one reply frame of a lane (with one lane: directly)."""
        if self.lanes == 1:
            protocol.write_frame(wout, frame)
            return
        with self.lock:
            protocol.write_frame(wout, frame)

    def exit(self, wout: BinaryIO, frame: Optional[Frame], log) -> None:
        """Writes frame (the crash reply; None: no reply, for a request that has no crash
        answer) and ends the process; with one lane it returns (the caller returns 3, as
        before lanes)."""
        if self.lanes == 1:
            if frame is not None:
                protocol.write_frame(wout, frame)
            return
        self.lock.acquire(timeout=10)  # never released: the process ends here (a stuck writer cannot hold it up)
        try:
            if frame is not None:
                protocol.write_frame(wout, frame)
        except OSError:
            pass
        try:
            log.flush()
        except Exception:
            pass
        os._exit(3)


def serve(target: targets.Target, rin: BinaryIO, wout: BinaryIO, device: torch.device, method: str,
          version: int, caps: Dict[str, Any], log, lanes: int = 1, crash: Optional[Crash] = None) -> int:
    """Serves one stream of the protocol (a worker's only one, or one of its lanes: lanes > 1
    declares them in the hello, and the case's results are synchronised on the current
    stream, the lane's, instead of the whole device)."""
    crash = crash or Crash(1)
    hello: Dict[str, Any] = {"type": "hello", "proto": protocol.PROTO, "version": version,
                             "backend": target.name, "device": f"{_device_description(device)}; poisoning: {method}"
                                       + (f"; host waits: {target.stagings.note}" if target.stagings.note else "")}
    if version >= 2:
        hello["capabilities"] = caps
    if lanes > 1:
        hello["lanes"] = lanes
    hello["forget"] = True  # any version (docs/gpu.md "Forget")
    crash.write(wout, Frame(hello))
    raised = False  # a run raised since the last forget (its traceback's frames may hold device tensors in cycles)
    while True:
        try:
            f = protocol.read_frame(rin)
        except ProtocolError as e:
            log.write(f"moecheck.worker: malformed frame: {e}\n")
            return 3
        if f is None:
            return 0
        typ = f.header.get("type")
        rid = f.header.get("id", 0)
        if typ == "bye":
            return 0
        if typ == "forget":
            nt = len(f.header.get("tensors") or [])
            if nt or f.payload:
                crash.write(wout, protocol.error_frame(rid, protocol.KIND_BAD_REQUEST,
                                                       f"a forget request with {nt} tensors and {len(f.payload)} "
                                                       "payload bytes (it has none)"))
                continue
            try:
                forget(target, device, method, collect=raised)
                raised = False
            except Exception as e:
                tb = traceback.format_exc()
                log.write(tb)
                if _is_device_fault(e, device):
                    # The context is lost (a fault of the lane's earlier work surfaced in the
                    # synchronisation): no reply; the process ends and the client starts a fresh one.
                    log.write(f"moecheck.worker: forget: device fault, the CUDA context is lost: {type(e).__name__}: {e}\n")
                    crash.exit(wout, None, log)
                    return 3
                crash.write(wout, protocol.error_frame(rid, protocol.KIND_INTERNAL, f"forget: {type(e).__name__}: {e}"))
                continue
            crash.write(wout, Frame({"type": "forgot", "id": rid}))
            continue
        if typ != "run":
            crash.write(wout, protocol.error_frame(rid, protocol.KIND_BAD_REQUEST, f"unknown message type {typ!r}"))
            continue
        try:
            c = protocol.decode_request(f)
        except ProtocolError as e:
            crash.write(wout, protocol.error_frame(rid, protocol.KIND_BAD_REQUEST, str(e)))
            continue
        f.payload = b""
        ids = c.tensors.get("ids")
        n_sent = int(((ids >= c.header.e) | (ids < 0)).sum()) if ids is not None else 0
        why = capsmod.check(caps, c.header, c.options, n_sent)
        if why is not None:
            kind = protocol.KIND_UNSUPPORTED if version >= 2 else protocol.KIND_BAD_REQUEST
            crash.write(wout, protocol.error_frame(rid, kind, why))
            continue
        want_triage = bool(c.options.stages or f.header.get("options", {}).get("triage"))
        t0 = time.perf_counter()
        try:
            extra: Dict[str, Any] = {}
            if want_triage:
                rep = _traced(target, c, device, method)
                extra["triage"] = rep
            results = targets.run_case(target, c, device, method, sync_device=lanes == 1)
            extra["elapsed_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            crash.write(wout, protocol.encode_result(rid, c.header, results, extra if version >= 2 else None))
        except _OOM as e:
            _release(method)
            crash.write(wout, protocol.error_frame(rid, protocol.KIND_OOM, f"{type(e).__name__}: {e}"))
        except Exception as e:
            raised = True
            tb = traceback.format_exc()
            log.write(tb)
            if _is_device_fault(e, device):
                crash.exit(wout, protocol.error_frame(rid, protocol.KIND_CRASH, f"{type(e).__name__}: {e}\n{tb}"), log)
                return 3
            if version >= 2:
                crash.write(wout, protocol.error_frame(rid, protocol.KIND_RAISED, f"{type(e).__name__}: {e}",
                                                                {"traceback": tb}))
            else:
                # Version 1 has no "raised": report a crash and exit, as a version-1 worker must.
                crash.exit(wout, protocol.error_frame(rid, protocol.KIND_CRASH, f"{type(e).__name__}: {e}\n{tb}"), log)
                return 3


_OOM = getattr(torch.cuda, "OutOfMemoryError", MemoryError)


def forget(target: targets.Target, device: torch.device, method: str, collect: bool = False) -> None:
    """Drops what the calling lane (thread) carries from the cases before, so that its next
    run sees what a fresh worker's would (docs/gpu.md "Forget"):

    - its experts modules (target._modules), gradients first: a cached module keeps the last
      run's weight gradients until the next run clears them (into the allocator's free list,
      where a stale-policy run would read them), and building a module frees temporaries
      (a transformers module is built in fp32 and converted) that a lane which had the shape
      cached would not have freed; dropped, the next run builds its module as a fresh worker
      does. Each run loads its own weights, so nothing else of a module carries over;
    - under the ``allocator`` method, its stream's cached free blocks (synchronised, then
      released: poison.forget_stream) and its stream's policy (back to zeros); other lanes'
      streams keep theirs.

    The ``dispatch`` and ``fill-uninitialized`` methods keep nothing between runs. The pinned
    host buffers of transfer.Staging are kept: every run overwrites the bytes it sends and
    reads back, and no device memory is kept with them.

    collect: run the garbage collector first (after a run that raised: frames of its traceback
    may keep device tensors in reference cycles, which would otherwise reach the free list at
    a later collection, in another trial); a run that returned frees its tensors as it ends."""
    for m in target._modules.values():
        for p in m.parameters():
            p.grad = None
    target._modules.clear()
    if collect:
        gc.collect()
    if method == "allocator":
        poison.forget_stream(device)


def _traced(target: targets.Target, c: protocol.Case, device: torch.device, method: str) -> str:
    """One extra pass of the case under the op recorder (same poison), as text."""
    h = c.header
    dt = targets.DTYPES[h.dtype]
    p = targets.prepare(target, c, device)
    with poison.poisoned(method, c.options.poison, dt):
        rep = triage.trace(lambda: target.fn(p.module, p.x, p.ids, p.rw),
                           lambda y: y.backward(p.dy.to(y.dtype)) if y.requires_grad else None)
    for q in p.module.parameters():
        q.grad = None
    return rep.text()


def _release(method: str) -> None:
    """After an out-of-memory case: the current stream's cached blocks released (not the other
    lanes': their trials' stale blocks stay, so their verdicts do not depend on this lane)."""
    a = poison.installed()
    if a is not None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
        s = torch.cuda.current_stream(dev)
        s.synchronize()
        a.release_stream(int(s.cuda_stream), dev.index)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def lanes_from_env(environ: Dict[str, str]) -> int:
    """The number of lanes MOECHECK_WORKER_LANES asks for (1 when unset or empty); ValueError
    names a bad value and the limit."""
    v = environ.get(LANES_ENV, "").strip()
    if not v:
        return 1
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1 or n > MAX_LANES:
        raise ValueError(f"{LANES_ENV}={v!r}: want a number of lanes between 1 and {MAX_LANES}")
    return n


def check_lane_fds(n: int) -> None:
    """Checks that the descriptors of lanes 1..n-1 (2k+1, 2k+2) are inherited pipes; OSError
    names one that is not (the worker was not started by the client). Call it before the
    process opens any descriptor of its own."""
    for k in range(1, n):
        for fd in (2 * k + 1, 2 * k + 2):
            try:
                st = os.fstat(fd)
            except OSError as e:
                raise OSError(f"lane {k}: descriptor {fd}: {e.strerror} (a worker of {n} lanes is started by the "
                              "client, which passes each lane's pipes)") from e
            if not stat.S_ISFIFO(st.st_mode):
                raise OSError(f"lane {k}: descriptor {fd}: not a pipe (a worker of {n} lanes is started by the "
                              "client, which passes each lane's pipes)")


def open_lanes(n: int, rin: BinaryIO, wout: BinaryIO) -> List[Tuple[BinaryIO, BinaryIO]]:
    """Lane 0 is (rin, wout); lane k >= 1 reads fd 2k+1 and writes fd 2k+2 (check_lane_fds)."""
    lanes = [(rin, wout)]
    for k in range(1, n):
        fin, fout = 2 * k + 1, 2 * k + 2
        lanes.append((os.fdopen(fin, "rb", buffering=1 << 16), os.fdopen(fout, "wb", buffering=1 << 16)))
    return lanes


def serve_lanes(target: targets.Target, lanes: List[Tuple[BinaryIO, BinaryIO]], device: torch.device, method: str,
                version: int, caps: Dict[str, Any], log) -> int:
    """Serves every lane on its own thread (each with its own CUDA stream and its own copy of
    the target's module cache) and returns once all ended: 0, or the worst lane status."""
    n = len(lanes)
    crash = Crash(n)
    status = [0] * n

    def lane(k: int) -> None:
        t = dataclasses.replace(target, _modules={})  # parameters and grads of its own
        rin, wout = lanes[k]
        try:
            if device.type == "cuda":
                with torch.cuda.device(device), torch.cuda.stream(torch.cuda.Stream(device)):
                    status[k] = serve(t, rin, wout, device, method, version, caps, log, n, crash)
            else:
                status[k] = serve(t, rin, wout, device, method, version, caps, log, n, crash)
        except BrokenPipeError:
            status[k] = 0
        except Exception as e:
            log.write(f"moecheck.worker: lane {k}: internal error: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            status[k] = 3
        finally:
            try:
                wout.close()
            except OSError:
                pass
        if status[k] != 0:
            crash.lock.acquire(timeout=10)  # never released: the process ends with the lane's status
            try:
                log.flush()
            except Exception:
                pass
            os._exit(status[k])

    threads = [threading.Thread(target=lane, args=(k,), name=f"moecheck-lane-{k}", daemon=True) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return max(status)


def set_fp32_gemm_reductions() -> List[str]:
    """Turns off the reduced-precision reductions of 16-bit cuBLAS GEMMs where this torch has
    the switches (bf16's since torch 2.0); returns the names of the switches it set."""
    done = []
    m = torch.backends.cuda.matmul
    for name in ("allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction"):
        try:
            setattr(m, name, False)
        except (AttributeError, AssertionError):  # torch 1.13 raises AssertionError for unknown names
            continue
        done.append(name)
    return done


def reduced_precision_switches() -> Tuple[bool, bool]:
    """(bf16, fp16): whether this torch lets 16-bit cuBLAS GEMMs reduce split-K partial sums
    in the dtype (torch.backends.cuda.matmul.allow_{bf16,fp16}_reduced_precision_reduction;
    False where this torch lacks the switch)."""
    m = torch.backends.cuda.matmul
    out = []
    for name in ("allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction"):
        try:
            out.append(bool(getattr(m, name)))
        except (AttributeError, AssertionError):
            out.append(False)
    return out[0], out[1]


def gemm_contract(base: str, target: str, device_type: str, capability: Tuple[int, int],
                  switches: Tuple[bool, bool]) -> str:
    """The contract a target's results obey given cuBLAS's reduced-precision switches: base,
    plus the reduced-precision-reduction modifier for each 16-bit dtype whose GEMMs may go
    through cuBLAS with its switch on (docs/oracle.md §9.6, contract.ReducedPrecisionReduction).

    Every GEMM of a target may go through cuBLAS (F.linear, mm, bmm, and torch._grouped_mm's
    fallback, which loops over mm_out), except torch._grouped_mm's bf16 fast path: CUTLASS
    kernels accumulating in fp32, taken on devices of compute capability 9.x and 10.x — so
    transformers:grouped_mm in bf16 there is judged without the freedom. A callable target is
    assumed to use cuBLAS. CPU GEMMs accumulate in fp32 (no switch applies). device_type
    "cuda-rocm" is a ROCm build of torch (its devices are "cuda" too, and MI300 reports
    capability 9.x, but its _grouped_mm is not the CUTLASS path): no exemption there."""
    if device_type not in ("cuda", "cuda-rocm"):
        return base
    bf16, fp16 = switches
    if bf16 and device_type == "cuda" and target == "transformers:grouped_mm" and capability[0] in (9, 10):
        bf16 = False
    if bf16 and fp16:
        return base + "+reduced-precision-reduction"
    if bf16:
        return base + "+bf16-reduced-precision-reduction"
    if fp16:
        return base + "+fp16-reduced-precision-reduction"
    return base


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m moecheck.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="transformers:<impl> | callable:<module>:<function> | ledger:<entry>")
    ap.add_argument("--device", default="", help="torch device (default cuda if available, else cpu)")
    ap.add_argument("--poison-method", default="auto", choices=["auto", "allocator", "fill-uninitialized", "dispatch", "none"],
                    help="how allocations are poisoned (auto: allocator on CUDA, dispatch on CPU)")
    ap.add_argument("--protocol", type=int, default=protocol.VERSION, choices=list(protocol.SUPPORTED_VERSIONS),
                    help="protocol version to speak (1: no capabilities, no 'raised' error kind)")
    ap.add_argument("--no-probe", action="store_true", help="claim the target's declared capabilities without probing")
    ap.add_argument("--no-sentinels", action="store_true",
                    help="declare that the target cannot take sentinel ids (capability sentinels=false): "
                         "moecheck then generates sentinel-free cases and counts others as unsupported")
    ap.add_argument("--fp32-gemm-reductions", action="store_true",
                    help="turn off cuBLAS's reduced-precision reductions for bf16 and fp16 GEMMs "
                         "(torch.backends.cuda.matmul.allow_{bf16,fp16}_reduced_precision_reduction = False): "
                         "the hello's contract is then plain torch (fp32 accumulation in every GEMM) instead of "
                         "torch+reduced-precision-reduction, whose bounds are much wider (docs/python.md, Findings 4); "
                         "the target's name says so")
    ap.add_argument("--sync", default=os.environ.get(SYNC_ENV, "") or "blocking", choices=list(transfer.SYNC_MODES),
                    help="how the host waits for the device (moecheck.transfer): blocking (default; the waiting "
                         "thread sleeps, so the lanes of several workers waiting for one GPU leave the host's cores "
                         "to the others) or spin (CUDA's default: a core per waiting thread); default from "
                         f"{SYNC_ENV}")
    ap.add_argument("--transfer", default=os.environ.get(TRANSFER_ENV, "") or "pinned", choices=list(transfer.TRANSFERS),
                    help="how a run's tensors cross to the device and back (moecheck.transfer): pinned (default; one "
                         f"asynchronous copy each way) or pageable (a copy per tensor); default from {TRANSFER_ENV}")
    ap.add_argument("--cpu-threads", type=int, default=0,
                    help="torch's intra-op CPU threads (0: 1 on a CUDA device, where the path's work is on the GPU "
                         "and several workers share the host's cores; torch's default on the CPU)")
    args = ap.parse_args(argv)
    if args.cpu_threads < 0 or args.cpu_threads > 1024:
        sys.stderr.write(f"moecheck.worker: --cpu-threads {args.cpu_threads}: want 0 (auto) to 1024\n")
        return 2

    # The lanes' descriptors are checked first: the dups below take the lowest free ones.
    try:
        n_lanes = lanes_from_env(dict(os.environ))
        check_lane_fds(n_lanes)
    except (ValueError, OSError) as e:
        sys.stderr.write(f"moecheck.worker: {e}\n")
        return 2
    # Frames go to the original stdout; fd 1 becomes stderr so nothing else can write there.
    wout = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    rin = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    log = sys.stderr
    lanes = open_lanes(n_lanes, rin, wout)

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", 0)  # set_device needs an index; CUDA_VISIBLE_DEVICES picks the GPU
    threads = args.cpu_threads or (1 if dev.type == "cuda" else 0)
    if threads:
        # one intra-op thread per worker on a GPU: the CLI runs several workers (--jobs) and
        # its own oracle on the same cores, and torch's default (a thread per core, each
        # spinning while it waits) in every worker oversubscribes them
        torch.set_num_threads(threads)
    method = args.poison_method
    if method == "auto":
        method = "allocator" if dev.type == "cuda" else "dispatch"
    stagings = transfer.configure(dev, args.sync, args.transfer)  # before CUDA is initialised
    try:
        if method == "allocator":
            if dev.type != "cuda":
                raise RuntimeError("--poison-method allocator needs a CUDA device")
            try:
                poison.install_allocator()  # before the first CUDA allocation
            except Exception as e:
                if args.poison_method != "auto" or "fill-uninitialized" not in poison.methods_available(dev.type):
                    raise
                # auto: say so and fall back to torch's own NaN fill (policies zeros and nan only)
                log.write(f"moecheck.worker: poisoning allocator unavailable ({type(e).__name__}: {e}); "
                          "falling back to fill-uninitialized (nan only)\n")
                method = "fill-uninitialized"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        target = targets.resolve(args.target, dev)
        target.stagings = stagings
        if args.no_sentinels:
            target.capabilities["sentinels"] = False
            target.name += " (sentinels=false)"
        if args.fp32_gemm_reductions:
            set_fp32_gemm_reductions()
            target.name += " (fp32 GEMM reductions)"
        if dev.type == "cuda":
            kind = "cuda-rocm" if getattr(torch.version, "hip", None) else "cuda"
            target.capabilities["contract"] = gemm_contract(
                target.capabilities.get("contract", "torch"), args.target, kind,
                torch.cuda.get_device_capability(dev), reduced_precision_switches())
    except targets.TargetError as e:
        log.write(f"moecheck.worker: {e}\n")
        return 2
    except Exception as e:
        log.write(f"moecheck.worker: start-up failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 3
    caps = dict(target.capabilities)
    caps["poisons"] = poison.policies_of(method)
    if not args.no_probe:
        try:
            caps = probe(target, dev, method, log)
        except ProbeError as e:
            log.write(f"moecheck.worker: {e}\n")
            return 3
    try:
        # the probe's modules and, on the default stream, its freed blocks: a fresh worker
        # starts as a lane after a forget does (the first trial on it cannot read the probe's)
        forget(target, dev, method)
    except Exception as e:
        log.write(f"moecheck.worker: start-up failed: forgetting the probe: {type(e).__name__}: {e}\n"
                  f"{traceback.format_exc()}")
        return 3
    log.flush()
    try:
        if n_lanes > 1:
            return serve_lanes(target, lanes, dev, method, args.protocol, caps, log)
        return serve(target, rin, wout, dev, method, args.protocol, caps, log)
    except BrokenPipeError:
        return 0
    except Exception as e:
        log.write(f"moecheck.worker: internal error: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 3


if __name__ == "__main__":
    sys.exit(main())
