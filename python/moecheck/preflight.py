"""Preflight: prove on this machine that poisoning covers every allocation size.

``python3 -m moecheck.preflight [--method M] [--device D] [--markdown]``

For each size class (1 element to 2^25; below, at and above the caching allocator's
boundaries: 512-byte rounding, the 1 MiB small/large pool split, the 2 MiB and 20 MiB
segments; 300 and 3,000,000 elements, the sizes that came back clean when free blocks were
painted) and each dtype, the memory is first dirtied (allocated, filled with 0.25, freed), then
requested again under each policy the method honours: every element must hold the policy's
exact bits. Stale: a block freed with known values must come back with them. Then the
unwritten tail of torch._grouped_mm (forward output and the backward's dX), where the seed
bugs lived, must hold the poison. Each method runs in its own process (an installed allocator
cannot be removed). Prints a table; exit status 0 when every cell passed, 1 otherwise, 3 when
a method is unavailable here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from typing import Dict, List, Tuple

import torch

from . import poison

SIZES = [1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 4095, 4096, 4097, 65535, 131072, 262143, 262144,
         262145, 524288, 524289, 1048575, 1048576, 1048577, 3_000_000, 5_242_881, 10_485_761, 33_554_432]
DTYPES = ["bf16", "fp32"]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32)


def _want(policy: str, dt: str) -> int:
    bits, width = poison.pattern(policy, dt)
    if bits >= 1 << (8 * width - 1):
        bits -= 1 << (8 * width)
    return bits


def _check_sizes(method: str, device: str, sizes: List[int]) -> List[Dict[str, object]]:
    rows = []
    pols = poison.policies_of(method)
    for n in sizes:
        for dt in DTYPES:
            tdt = poison.TORCH_DTYPES[dt]
            for pol in pols:
                # dirty: a block of this size holding finite values, then freed
                d = torch.empty(n, dtype=tdt, device=device)
                d.fill_(0.25)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                del d
                with poison.poisoned(method, pol, tdt):
                    if pol == "stale":
                        # Under stale, the dirty block itself must come back unfilled.
                        t = torch.empty(n, dtype=tdt, device=device)
                        ok = bool((t == 0.25).all())
                        want = "0.25 (recycled)"
                    else:
                        t = torch.empty(n, dtype=tdt, device=device)
                        if pol == "zeros" and method == "fill-uninitialized":
                            ok = True  # the mechanism off: nothing promised (not claimed as a fill)
                        else:
                            ok = bool((_bits(t) == _want(pol, dt)).all())
                        want = hex(poison.pattern(pol, dt)[0])
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    del t
                rows.append({"elements": n, "bytes": n * (2 if dt == "bf16" else 4), "dtype": dt, "policy": pol,
                             "ok": ok, "want": want})
    return rows


def _check_grouped_tail(method: str, device: str) -> List[Dict[str, object]]:
    """torch._grouped_mm's rows past offs[-1] (forward) and its dX tail (backward)."""
    out = []
    gm = getattr(torch, "_grouped_mm", None)
    if gm is None or not device.startswith("cuda"):
        from .ledger import grouped_mm as gm2

        fn, label = gm2, "emulated grouped_mm (torch.empty outputs)"
    else:
        fn, label = (lambda x, w, offs: gm(x, w, offs=offs)), "torch._grouped_mm"
    S, H, N, E = 64, 64, 32, 2
    for pol in [p for p in poison.policies_of(method) if p not in ("zeros", "stale")]:
        dt = torch.bfloat16
        x = torch.randn(S, H, device=device).to(dt).requires_grad_(True)
        w = torch.randn(E, H, N, device=device).to(dt).requires_grad_(True)
        offs = torch.tensor([10, 40], dtype=torch.int32, device=device)  # rows 40.. are the tail
        with poison.poisoned(method, pol, dt):
            y = fn(x, w, offs)
            tail_y = y[40:].detach().clone()
            y.backward(torch.ones_like(y))
        want = _want(pol, "bf16")
        ok_y = bool((_bits(tail_y) == want).all())
        out.append({"check": f"{label} forward tail rows 40..63", "policy": pol, "ok": ok_y})
        # dX rows past offs[-1]: autograd-internal; with zero-filled memory they read 0 and the
        # leak hides, so the check is that they are NOT silently finite-zero under poison.
        gx = x.grad[40:]
        ok_x = bool((_bits(gx) == want).all()) or not bool(torch.isfinite(gx).all())
        out.append({"check": f"{label} backward dX tail rows 40..63 (poisoned, not fresh zeros)", "policy": pol, "ok": ok_x})
    return out


def _check_lanes(method: str, device: str) -> List[Dict[str, object]]:
    """A worker's lanes: two threads (each on a CUDA stream of its own on a GPU) poison at the
    same time under different policies; every allocation of each must carry its own thread's
    policy (the allocator's policy is per stream, the dispatch mode per thread; cases under
    the dispatch mode take turns, poison._DISPATCH, so there the two start together and run
    one after the other)."""
    pols = [p for p in ("nan", "+inf") if p in poison.policies_of(method)]
    if len(pols) < 2:
        return []
    dt = torch.float32
    bad: Dict[str, int] = {p: 0 for p in pols}
    errors: List[str] = []
    gate = threading.Barrier(len(pols))
    turns = method == "dispatch"

    def lane(pol: str) -> None:
        try:
            ctx = torch.cuda.stream(torch.cuda.Stream(device)) if device.startswith("cuda") else contextlib.nullcontext()
            if turns:
                gate.wait()
            with ctx, poison.poisoned(method, pol, dt):
                if not turns:
                    gate.wait()
                for i in range(200):
                    t = torch.empty(300 + 37 * (i % 9), dtype=dt, device=device)
                    if not bool((_bits(t) == _want(pol, "fp32")).all()):
                        bad[pol] += 1
                    del t
        except Exception as e:  # reported as a failed check
            errors.append(f"{type(e).__name__}: {e}")

    ths = [threading.Thread(target=lane, args=(p,)) for p in pols]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return [{"check": f"lanes: 2 threads{' on streams of their own' if device.startswith('cuda') else ''}, "
                      f"{' and '.join(pols)} {'in turn' if turns else 'at once'}, 200 allocations each"
                      f" ({'; '.join(errors) if errors else ', '.join(f'{p}: {n} wrong' for p, n in bad.items())})",
             "policy": "/".join(pols), "ok": not errors and not any(bad.values())}]


def run_method(method: str, device: str, sizes: List[int]) -> Dict[str, object]:
    if method == "allocator":
        poison.install_allocator()
    if method == "fill-uninitialized" and not hasattr(getattr(torch.utils, "deterministic", None), "fill_uninitialized_memory"):
        raise RuntimeError(f"torch {torch.__version__} has no torch.utils.deterministic.fill_uninitialized_memory")
    res: Dict[str, object] = {"method": method, "device": device, "torch": torch.__version__,
                              "sizes": _check_sizes(method, device, sizes),
                              "tail": _check_grouped_tail(method, device) + _check_lanes(method, device)}
    a = poison.installed()
    if a is not None:
        res["allocator_stats"] = a.stats()
    return res


def table(res: Dict[str, object]) -> str:
    rows = res["sizes"]  # type: ignore[index]
    pols: List[str] = []
    for r in rows:  # type: ignore[union-attr]
        if r["policy"] not in pols:
            pols.append(r["policy"])
    by: Dict[Tuple[int, str], Dict[str, bool]] = {}
    for r in rows:  # type: ignore[union-attr]
        by.setdefault((r["elements"], r["dtype"]), {})[r["policy"]] = r["ok"]
    lines = [f"method {res['method']} on {res['device']} (torch {res['torch']})", "",
             "| elements | dtype | bytes | " + " | ".join(pols) + " |",
             "| ---: | --- | ---: | " + " | ".join("---" for _ in pols) + " |"]
    for (n, dt), cells in by.items():
        b = n * (2 if dt == "bf16" else 4)
        lines.append(f"| {n} | {dt} | {b} | " + " | ".join("ok" if cells.get(p) else "**FAIL**" for p in pols) + " |")
    for t in res["tail"]:  # type: ignore[union-attr]
        lines.append(f"- {t['check']} under {t['policy']}: {'ok' if t['ok'] else 'FAIL'}")
    if "allocator_stats" in res:
        lines.append(f"- allocator: {res['allocator_stats']}")
    return "\n".join(lines)


def passed(res: Dict[str, object]) -> bool:
    return all(r["ok"] for r in res["sizes"]) and all(t["ok"] for t in res["tail"])  # type: ignore[union-attr]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m moecheck.preflight", description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="", help="allocator | fill-uninitialized | dispatch (default: every one available here)")
    ap.add_argument("--device", default="", help="cuda or cpu (default cuda if available)")
    ap.add_argument("--max-elements", type=int, default=SIZES[-1], help="largest size class to try")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON (one method)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = [s for s in SIZES if s <= a.max_elements]
    if a.child or a.method:
        try:
            res = run_method(a.method, device, sizes)
        except Exception as e:
            print(f"preflight: method {a.method}: {type(e).__name__}: {e}", file=sys.stderr)
            return 3
        print(json.dumps(res) if a.json else table(res))
        return 0 if passed(res) else 1
    rc = 0
    for m in poison.methods_available(device):
        p = subprocess.run([sys.executable, "-m", "moecheck.preflight", "--child", "--method", m, "--device", device,
                            "--max-elements", str(a.max_elements)], capture_output=True, text=True, env=dict(os.environ))
        print(p.stdout.rstrip())
        if p.returncode != 0:
            print(f"(method {m}: exit {p.returncode}) {p.stderr.strip()[-2000:]}")
            rc = max(rc, 1 if p.returncode == 1 else rc)
        print()
    return rc


if __name__ == "__main__":
    sys.exit(main())
