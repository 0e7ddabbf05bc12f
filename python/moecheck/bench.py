"""Where the time of one run goes in the worker: ``python3 -m moecheck.bench --target NAME``.

Runs one case in-process repeatedly, split into the parts the worker executes for every run
request, with a device synchronisation after each part so the GPU time lands in the part that
queued it (the worker itself synchronises only once, when it copies the results back):

    decode     parse the request frame (header JSON, tensors from the payload)
    setup      the experts module of the case's shape (cached per shape; with --fresh-shapes
               a shape not seen before, so the module is built: config, model class, .to),
               the case's weights copied in, the inputs moved to the device
    forward    the target's forward under the poison policy
    backward   y.backward(dy) under the poison policy
    poison     entering and leaving the poison policy (the fills themselves happen in the
               allocations of forward and backward: compare --poison zeros with nan)
    collect    gradients gathered, converted to the dtype, copied to the host (one transfer)
    encode     the result frame

Each is the median over --reps runs (after --warmup); "per run" is their sum and "runs/s" its
inverse. A case of the CLI needs about ten runs (one per property run: poison-invariance
alone runs every honoured policy) plus the float64 oracle and the pipe on the Go side.
--profile N writes cProfile's top N functions of the measured loop instead (CPU time of the
Python side; on CUDA the kernels run asynchronously, so the profile shows launch overhead).

--lanes N,M,... measures instead the aggregate rate of N threads serving runs as a worker's
lanes do (each thread its own CUDA stream and module cache; decode, run, synchronise on the
lane's stream, encode; no per-part synchronisation): runs/s for each N, which shows how far
one process's lanes scale before the GIL (and autograd's device thread) caps them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import dataclasses
import statistics
import sys
import threading
import time
import warnings
from typing import Callable, Dict, List

import torch

from . import poison, protocol, targets, transfer, worker

PARTS = ["decode", "setup", "forward", "backward", "poison", "collect", "encode"]


def parse_shape(s: str) -> Dict[str, int]:
    """'T=4 H=16 I=16 E=4 K=2' → dict (keys t, h, i, e, k)."""
    out = {"t": 4, "h": 16, "i": 16, "e": 4, "k": 2}
    for f in s.replace(",", " ").split():
        k, sep, v = f.partition("=")
        if not sep or k.lower() not in out:
            raise ValueError(f"--shape {s!r}: want fields like T=4 H=16 I=16 E=4 K=2 (bad {f!r})")
        n = int(v)
        if not 1 <= n <= 1 << 16:
            raise ValueError(f"--shape: {k}={n} outside [1, 65536]")
        out[k.lower()] = n
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m moecheck.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--reps", type=int, default=200, help="measured runs (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured runs first (default 10)")
    ap.add_argument("--dtype", default="", help="bf16, fp16, fp32 (default bf16 on CUDA, fp32 on the CPU)")
    ap.add_argument("--shape", default="T=4 H=16 I=16 E=4 K=2", help="case sizes (default T=4 H=16 I=16 E=4 K=2)")
    ap.add_argument("--act", default="swiglu", choices=["swiglu", "gptoss"], help="swiglu (Qwen3-MoE) or gptoss (transposed, bias)")
    ap.add_argument("--poison", default="nan", help="poison policy of the runs (default nan)")
    ap.add_argument("--poison-method", default="auto", choices=["auto", "allocator", "fill-uninitialized", "dispatch", "none"])
    ap.add_argument("--fresh-shapes", action="store_true",
                    help="every run a shape not seen before (H grows by the alignment): setup includes building the module")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N functions of the loop")
    ap.add_argument("--lanes", default="", metavar="N,M,...",
                    help="measure the aggregate runs/s of N threads serving runs as a worker's lanes, for each N")
    ap.add_argument("--sync", default="blocking", choices=list(transfer.SYNC_MODES),
                    help="how the host waits for the device, as the worker's --sync (default blocking)")
    ap.add_argument("--transfer", default="pinned", choices=list(transfer.TRANSFERS),
                    help="how a run's tensors cross to the device and back, as the worker's --transfer (default pinned)")
    ap.add_argument("--count-syncs", action="store_true",
                    help="also count the host-device synchronisations of one run per part "
                         "(torch.cuda.set_sync_debug_mode: implicit waits inside the path included)")
    a = ap.parse_args(argv)
    if a.reps < 1 or a.warmup < 0:
        ap.error("--reps must be at least 1 and --warmup at least 0")
    try:
        shape = parse_shape(a.shape)
    except ValueError as e:
        ap.error(str(e))
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    method = a.poison_method
    if method == "auto":
        method = "allocator" if dev.type == "cuda" else "dispatch"
    stagings = transfer.configure(dev, a.sync, a.transfer)  # before CUDA is initialised
    if method == "allocator":
        poison.install_allocator()
    t = targets.resolve(a.target, dev)
    t.stagings = stagings
    dt = a.dtype or ("bf16" if dev.type == "cuda" else "fp32")
    gpt = a.act == "gptoss"
    align = int((t.capabilities.get("align", {}).get(dt) or {}).get("h", 1) or 1)

    def header(i: int) -> protocol.CaseHeader:
        hh = shape["h"] + (align * (i + 1) if a.fresh_shapes else 0)
        return protocol.CaseHeader(t=shape["t"], h=hh, i=shape["i"], e=shape["e"], k=shape["k"], dtype=dt, act=a.act,
                                   layout="transposed" if gpt else "standard", bias=gpt)

    reqs: List[protocol.Frame] = []
    for i in range(a.reps + a.warmup):
        if i == 0 or a.fresh_shapes:
            h = header(i)
            c = worker._probe_case(h, sentinels=False)
            f = protocol.encode_request(1, h, protocol.Options(poison=a.poison), c.tensors)
        reqs.append(f)
    times: Dict[str, List[float]] = {k: [] for k in PARTS}
    if a.lanes:
        try:
            ns = [int(x) for x in a.lanes.split(",") if x.strip()]
        except ValueError:
            ns = []
        if not ns or any(n < 1 or n > worker.MAX_LANES for n in ns):
            ap.error(f"--lanes {a.lanes!r}: want a comma list of lane counts between 1 and {worker.MAX_LANES}")
        for n in ns:
            rate = lanes_rate(t, reqs, dev, method, n, a.warmup)
            print(f"target {a.target} on {dev} ({dt}, {a.act}, poison {a.poison} via {method}): {n} lane(s): "
                  f"{rate:.0f} runs/s in one process ({rate / n:.0f} per lane), {len(reqs) - a.warmup} runs per lane")
        return 0

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def one(i: int, f: protocol.Frame) -> None:
        t0 = time.perf_counter()
        cc = protocol.decode_request(f)
        t1 = time.perf_counter()
        p = targets.prepare(t, cc, dev)
        sync()
        t2 = time.perf_counter()
        ctx = poison.poisoned(method, cc.options.poison, targets.DTYPES[dt])
        ctx.__enter__()
        t3 = time.perf_counter()
        y = targets.forward(t, p, cc.header)
        sync()
        t4 = time.perf_counter()
        targets.backward(p, y)
        sync()
        t5 = time.perf_counter()
        ctx.__exit__(None, None, None)
        t6 = time.perf_counter()
        r = targets.collect(p, y, cc.header)
        t7 = time.perf_counter()
        protocol.encode_result(1, cc.header, r)
        t8 = time.perf_counter()
        if i >= a.warmup:
            for k, v in zip(PARTS, [t1 - t0, t2 - t1, t4 - t3, t5 - t4, (t3 - t2) + (t6 - t5), t7 - t6, t8 - t7]):
                times[k].append(v)

    loop: Callable[[], None] = lambda: [one(i, f) for i, f in enumerate(reqs)]
    if a.profile:
        prof = cProfile.Profile()
        prof.runcall(loop)
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(a.profile)
        print(s.getvalue())
    else:
        loop()
    h0 = header(0)
    what = f"T={h0.t} H={h0.h}{'+' if a.fresh_shapes else ''} I={h0.i} E={h0.e} K={h0.k} {a.act}"
    print(f"target {a.target} on {dev} ({dt}, {what}, poison {a.poison} via {method}"
          f"{', a fresh shape every run' if a.fresh_shapes else ''}"
          f"{f', host waits: {stagings.note}' if stagings.note else ''}), median of {a.reps} runs:")
    total = 0.0
    for k in PARTS:
        m = statistics.median(times[k]) * 1e3
        total += m
        print(f"  {k:9s} {m:8.3f} ms")
    print(f"  per run   {total:8.3f} ms = {1e3 / total:.0f} runs/s in the worker")
    al = poison.installed()
    if al is not None:
        print(f"  allocator: {al.stats()}")
    if a.count_syncs and dev.type == "cuda":
        print("  host-device synchronisations of one run: " + ", ".join(
            f"{k} {v}" for k, v in count_syncs(t, reqs[-1], dev, method).items()))
    return 0


def count_syncs(t: targets.Target, f: protocol.Frame, dev: torch.device, method: str) -> Dict[str, int]:
    """The synchronising CUDA calls of one run per part (setup, forward, backward, collect),
    as torch's sync debug mode reports them (a warning per call)."""
    out: Dict[str, int] = {}
    cc = protocol.decode_request(f)
    torch.cuda.synchronize()
    prev = torch.cuda.get_sync_debug_mode()
    try:
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            n = 0

            def mark(part: str) -> None:
                nonlocal n
                out[part] = len(w) - n
                n = len(w)

            p = targets.prepare(t, cc, dev)
            mark("setup")
            with poison.poisoned(method, cc.options.poison, targets.DTYPES[cc.header.dtype]):
                y = targets.forward(t, p, cc.header)
                mark("forward")
                targets.backward(p, y)
                mark("backward")
            targets.collect(p, y, cc.header, sync_device=False)
            mark("collect")
    finally:
        torch.cuda.set_sync_debug_mode(prev)
    return out


def lanes_rate(t: targets.Target, reqs: List[protocol.Frame], dev: torch.device, method: str, n: int,
               warmup: int) -> float:
    """Aggregate runs/s of n threads, each serving every request of reqs as a worker's lane
    (own stream, own module cache; warmup runs first, then all start together)."""
    start = threading.Barrier(n + 1)
    done = threading.Barrier(n + 1)
    errors: List[BaseException] = []

    def lane() -> None:
        tl = dataclasses.replace(t, _modules={})
        ctx = torch.cuda.stream(torch.cuda.Stream(dev)) if dev.type == "cuda" else None

        def serve(fs: List[protocol.Frame]) -> None:
            for f in fs:
                cc = protocol.decode_request(f)
                r = targets.run_case(tl, cc, dev, method, sync_device=n == 1)
                protocol.encode_result(1, cc.header, r)

        try:
            if ctx is not None:
                ctx.__enter__()
            serve(reqs[:warmup])
        except BaseException as e:  # reported after the run
            errors.append(e)
        start.wait()
        try:
            if not errors:
                serve(reqs[warmup:])
        except BaseException as e:
            errors.append(e)
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
        done.wait()

    ths = [threading.Thread(target=lane, daemon=True) for _ in range(n)]
    for th in ths:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    done.wait()
    wall = time.perf_counter() - t0
    for th in ths:
        th.join()
    if errors:
        raise errors[0]
    return n * (len(reqs) - warmup) / wall


if __name__ == "__main__":
    sys.exit(main())
