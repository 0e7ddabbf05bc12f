"""Where the time of one tiny case goes: ``python3 -m moecheck.bench --target NAME``.

Runs one small case (T=4 H=16 I=16 E=4 K=2, bf16 on CUDA, fp32 on the CPU, SwiGLU) in-process
repeatedly and reports the median per-case time of each part: decoding a request frame,
loading the module, forward + backward without poisoning, the same under NaN poison, and
encoding the result frame. The CLI adds the Go side (generation, oracle) and the pipe.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from . import poison, protocol, targets, worker


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m moecheck.bench")
    ap.add_argument("--target", required=True)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--dtype", default="")
    a = ap.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    method = "allocator" if dev.type == "cuda" else "dispatch"
    if method == "allocator":
        poison.install_allocator()
    t = targets.resolve(a.target, dev)
    dt = a.dtype or ("bf16" if dev.type == "cuda" else "fp32")
    h = protocol.CaseHeader(t=4, h=16, i=16, e=4, k=2, dtype=dt)
    c = worker._probe_case(h)
    req = protocol.encode_request(1, h, protocol.Options(poison="nan"), c.tensors)
    times = {"decode": [], "run (no poison)": [], "run (nan poison)": [], "encode": []}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(a.reps + 10):
        t0 = time.perf_counter()
        cc = protocol.decode_request(req)
        t1 = time.perf_counter()
        r = targets.run_case(t, cc, dev, "none")
        sync()
        t2 = time.perf_counter()
        r = targets.run_case(t, cc, dev, method)
        sync()
        t3 = time.perf_counter()
        protocol.encode_result(1, h, r)
        t4 = time.perf_counter()
        if i >= 10:
            times["decode"].append(t1 - t0)
            times["run (no poison)"].append(t2 - t1)
            times["run (nan poison)"].append(t3 - t2)
            times["encode"].append(t4 - t3)
    print(f"target {a.target} on {dev} ({dt}, T=4 H=16 I=16 E=4 K=2), median of {a.reps}:")
    total = 0.0
    for k, v in times.items():
        m = statistics.median(v) * 1e3
        if k != "run (no poison)":
            total += m
        print(f"  {k:18s} {m:8.3f} ms")
    print(f"  per case (decode + poisoned run + encode): {total:.3f} ms = {1e3 / total:.0f} runs/s in the worker")
    a_ = poison.installed()
    if a_ is not None:
        print(f"  allocator: {a_.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
