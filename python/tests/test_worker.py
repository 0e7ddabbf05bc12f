"""The worker over real pipes (a Python client), targets, poisoning, the ledger and triage on
the CPU; and, when Go is available, the Go CLI against the worker (both directions of the
protocol and the verdicts)."""

import io
import os
import shutil
import subprocess
import sys
import unittest

import torch

from moecheck import ledger, poison, targets, triage, worker
from moecheck import protocol as P

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(PKG)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PKG + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


class WorkerClient:
    """A minimal client: start the worker, read its hello, send runs."""

    def __init__(self, *args):
        # these tests pin the CPU's semantics (dispatch poisoning, plain torch contract, a
        # Python exception where CUDA would raise a device-side assert), also on a GPU machine
        if "--device" not in args:
            args = (*args, "--device", "cpu")
        self.p = subprocess.Popen([sys.executable, "-m", "moecheck.worker", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
        self.hello = P.read_frame(self.p.stdout)

    def run(self, rid, h, opts, t):
        P.write_frame(self.p.stdin, P.encode_request(rid, h, opts, t))
        return P.read_frame(self.p.stdout)

    def close(self):
        P.write_frame(self.p.stdin, P.Frame({"type": "bye"}))
        self.p.stdin.close()
        rc = self.p.wait(timeout=60)
        self.p.stdout.close()
        self.stderr = self.p.stderr.read().decode(errors="replace")
        self.p.stderr.close()
        return rc


def case(h, seed=1, sentinel_weight_zero=True):
    c = worker._probe_case(h)
    g = torch.Generator().manual_seed(seed)
    c.tensors["ids"] = torch.randint(0, h.e + 1, (h.t, h.k), generator=g, dtype=torch.int32)
    c.tensors["ids"][0, 0] = h.e  # at least one sentinel slot
    if sentinel_weight_zero:
        c.tensors["rw"] = torch.where(c.tensors["ids"] == h.e, torch.zeros_like(c.tensors["rw"]), c.tensors["rw"])
    return c


class WorkerProtocolTest(unittest.TestCase):
    def test_hello_results_raised_unsupported_bye(self):
        w = WorkerClient("--target", "callable:moecheck.testing:echo")
        try:
            self.assertEqual(w.hello.header["proto"], "moecheck-worker")
            self.assertEqual(w.hello.header["version"], 2)
            caps = w.hello.header["capabilities"]
            self.assertEqual(caps["contract"], "torch")
            self.assertNotIn("stale", caps["poisons"], "the CPU dispatch poisoning cannot define stale")
            h = P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="bf16")
            c = case(h)
            r = w.run(1, h, P.Options(poison="nan"), c.tensors)
            self.assertEqual(r.header["type"], "result")
            self.assertEqual(r.header["id"], 1)
            y = P.decode_tensor(r.payload, r.header["tensors"][0])
            self.assertTrue(torch.equal(y.view(torch.int16), c.tensors["x"].reshape(-1).view(torch.int16)))
            r = w.run(2, h, P.Options(poison="stale"), c.tensors)
            self.assertEqual((r.header["type"], r.header["kind"]), ("error", "unsupported"))
            r = w.run(3, P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="bf16", bias=True), P.Options(), case(P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="bf16", bias=True)).tensors)
            self.assertEqual(r.header["kind"], "unsupported")
            self.assertIn("variant", r.header["detail"])
        finally:
            self.assertEqual(w.close(), 0)

    def test_raised_keeps_worker(self):
        w = WorkerClient("--target", "callable:moecheck.testing:raises", "--no-probe")
        try:
            h = P.CaseHeader(t=2, h=4, i=2, e=2, k=2, dtype="fp32")
            for rid in (1, 2):
                r = w.run(rid, h, P.Options(poison="nan"), case(h).tensors)
                self.assertEqual(r.header["kind"], "raised")
                self.assertIn("raised on purpose", r.header["detail"])
                self.assertIn("Traceback", r.header["traceback"])
        finally:
            self.assertEqual(w.close(), 0)

    def test_probe_ignores_sentinels_and_says_why(self):
        # probe-sentinels: a target that raises on sentinel ids (transformers 5.17's eager) keeps
        # its dtypes and variants (the probe once used sentinel ids and dropped them all), and
        # the sentinel cases fail as raised.
        w = WorkerClient("--target", "callable:moecheck.testing:rejects_sentinels")
        try:
            caps = w.hello.header["capabilities"]
            self.assertIn("fp32", caps["dtypes"])
            self.assertEqual(len(caps["variants"]), 2)
            h = P.CaseHeader(t=2, h=4, i=2, e=2, k=2, dtype="fp32")
            r = w.run(1, h, P.Options(), case(h).tensors)
            self.assertEqual(r.header["kind"], "raised")
        finally:
            self.assertEqual(w.close(), 0)
        # probe-reasons: a combination dropped is named on stderr with the exception and the line.
        w = WorkerClient("--target", "callable:moecheck.testing:raises")
        try:
            self.assertEqual(w.hello.header["capabilities"]["dtypes"], [])
        finally:
            w.close()
        err = w.stderr
        self.assertIn("probe callable:moecheck.testing:raises fp32 swiglu/standard/bias=0: dropped: ValueError: "
                      "moecheck.testing.raises: raised on purpose [raised at ", err)
        self.assertIn("dtypes kept: none", err)

    def test_no_sentinels_declares_and_refuses(self):
        # --no-sentinels: the hello says sentinels=false, a case with a sentinel id is
        # unsupported (not raised), a sentinel-free case runs.
        w = WorkerClient("--target", "callable:moecheck.testing:rejects_sentinels", "--no-sentinels")
        try:
            self.assertIs(w.hello.header["capabilities"]["sentinels"], False)
            h = P.CaseHeader(t=2, h=4, i=2, e=2, k=2, dtype="fp32")
            r = w.run(1, h, P.Options(), case(h).tensors)
            self.assertEqual(r.header["kind"], "unsupported")
            self.assertIn("sentinel id(s): the target declares sentinels=false", r.header["detail"])
            c = case(h)
            c.tensors["ids"] = c.tensors["ids"] % h.e
            self.assertEqual(w.run(2, h, P.Options(), c.tensors).header["type"], "result")
        finally:
            self.assertEqual(w.close(), 0)

    def test_protocol_1(self):
        w = WorkerClient("--target", "callable:moecheck.testing:echo", "--protocol", "1")
        try:
            self.assertEqual(w.hello.header["version"], 1)
            self.assertNotIn("capabilities", w.hello.header)
            h = P.CaseHeader(t=2, h=4, i=2, e=2, k=2, dtype="fp32")
            f = P.encode_request(1, h, P.Options(), case(h).tensors, version=1)
            self.assertIn("T", f.header["case"])
            P.write_frame(w.p.stdin, f)
            self.assertEqual(P.read_frame(w.p.stdout).header["type"], "result")
        finally:
            self.assertEqual(w.close(), 0)

    def test_bad_target_is_usage_error(self):
        p = subprocess.run([sys.executable, "-m", "moecheck.worker", "--target", "ledger:no-such"], capture_output=True,
                           text=True, env=env())
        self.assertEqual(p.returncode, 2)
        self.assertIn("45621-as-merged", p.stderr)

    def test_fp32_gemm_reductions(self):
        # --fp32-gemm-reductions (docs/python.md, Findings 4): the switches are off in the
        # worker and its backend name says so; set_fp32_gemm_reductions sets what this torch has
        w = WorkerClient("--target", "callable:moecheck.testing:echo", "--fp32-gemm-reductions", "--no-probe")
        try:
            self.assertIn("(fp32 GEMM reductions)", w.hello.header["backend"])
        finally:
            self.assertEqual(w.close(), 0)
        m = torch.backends.cuda.matmul
        before = m.allow_fp16_reduced_precision_reduction
        try:
            done = worker.set_fp32_gemm_reductions()
            self.assertIn("allow_fp16_reduced_precision_reduction", done)
            self.assertFalse(m.allow_fp16_reduced_precision_reduction)
        finally:
            m.allow_fp16_reduced_precision_reduction = before

    def test_cpu_threads_out_of_range_is_usage_error(self):
        for bad in ("-1", "1025"):
            with self.subTest(bad):
                p = subprocess.run([sys.executable, "-m", "moecheck.worker", "--target", "ledger:fixed", "--cpu-threads", bad],
                                   capture_output=True, text=True, env=env())
                self.assertEqual(p.returncode, 2)
                self.assertIn("--cpu-threads", p.stderr)

    def test_gemm_contract(self):
        # the hello's contract names cuBLAS's reduced-precision switches per dtype (Go reads it
        # with contract.ByName: internal/worker's TestCapabilitiesValidate has the modifier rows)
        for name, target, dev, cap, sw, want in [
            ("gc-cpu", "transformers:eager", "cpu", (0, 0), (True, True), "torch"),
            ("gc-eager-both", "transformers:eager", "cuda", (9, 0), (True, True), "torch+reduced-precision-reduction"),
            ("gc-eager-off", "transformers:eager", "cuda", (9, 0), (False, False), "torch"),
            ("gc-grouped-h200", "transformers:grouped_mm", "cuda", (9, 0), (True, True), "torch+fp16-reduced-precision-reduction"),
            ("gc-grouped-rocm", "transformers:grouped_mm", "cuda-rocm", (9, 4), (True, True), "torch+reduced-precision-reduction"),
            ("gc-grouped-a100", "transformers:grouped_mm", "cuda", (8, 0), (True, True), "torch+reduced-precision-reduction"),
            ("gc-bf16-only", "callable:m:f", "cuda", (9, 0), (True, False), "torch+bf16-reduced-precision-reduction"),
        ]:
            with self.subTest(name):
                self.assertEqual(worker.gemm_contract("torch", target, dev, cap, sw), want)
        bf, fp = worker.reduced_precision_switches()
        self.assertIsInstance(bf, bool)
        self.assertIsInstance(fp, bool)

    def test_prints_do_not_corrupt_frames(self):
        w = WorkerClient("--target", "callable:tests.noisy:experts")
        try:
            h = P.CaseHeader(t=2, h=4, i=2, e=2, k=2, dtype="fp32")
            r = w.run(1, h, P.Options(poison="nan"), case(h).tensors)
            self.assertEqual(r.header["type"], "result")
        finally:
            self.assertEqual(w.close(), 0)


class PoisonTest(unittest.TestCase):
    def test_dispatch_fills_every_policy(self):
        for dt in (torch.bfloat16, torch.float16, torch.float32):
            for pol in ("nan", "+inf", "-inf", "huge", "signature", "zeros"):
                with self.subTest(dtype=dt, policy=pol):
                    with poison.poisoned("dispatch", pol, dt) as mode:
                        t = torch.empty(300, dtype=dt)
                        u = torch.empty_like(t)
                        v = t.new_empty((3, 5))
                    want = poison.fill_value(pol, dt)
                    for x in (t, u, v):
                        it = torch.int16 if dt != torch.float32 else torch.int32
                        self.assertTrue(bool((x.view(it) == want.view(it)).all()))
                    self.assertEqual(mode.filled, 3)

    def test_preflight_cpu(self):
        p = subprocess.run([sys.executable, "-m", "moecheck.preflight", "--method", "dispatch", "--device", "cpu",
                            "--max-elements", "4097"], capture_output=True, text=True, env=env())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("| 300 | bf16 |", p.stdout)
        self.assertNotIn("FAIL", p.stdout)


class LedgerTest(unittest.TestCase):
    """Each reconstructed bug shows its signature on the CPU, and the control does not."""

    def run_entry(self, entry, pol, act="swiglu"):
        tr = targets.resolve("ledger:" + entry, torch.device("cpu"))
        gpt = act == "gptoss"
        h = P.CaseHeader(t=4, h=4, i=3, e=3, k=2, dtype="fp32", act=act, layout="transposed" if gpt else "standard", bias=gpt)
        c = case(h)
        c.options.poison = pol
        return c, targets.run_case(tr, c, torch.device("cpu"), "dispatch")

    def test_entries(self):
        for act in ("swiglu", "gptoss"):
            for entry, pol, want in [("fixed", "nan", "clean"), ("45621-as-merged", "zeros", "clean"),
                                     ("45621-as-merged", "nan", "nan-drw"), ("clamp-sentinels", "zeros", "nonzero-drw")]:
                with self.subTest(act=act, entry=entry, poison=pol):
                    c, r = self.run_entry(entry, pol, act)
                    sent = c.tensors["ids"] == c.header.e
                    drw = r["drw"][sent]
                    for k, v in r.items():
                        if k != "drw":
                            self.assertTrue(bool(torch.isfinite(v).all()), k)
                    if want == "clean":
                        self.assertTrue(bool((drw == 0).all()), drw)
                    elif want == "nan-drw":
                        self.assertTrue(bool(torch.isnan(drw).all()), drw)
                    else:
                        self.assertTrue(bool(torch.isfinite(drw).all()) and bool((drw != 0).any()), drw)

    def test_triage_names_the_weight_gradient(self):
        tr = targets.resolve("ledger:45621-as-merged", torch.device("cpu"))
        h = P.CaseHeader(t=1, h=1, i=1, e=2, k=1, dtype="fp32")
        c = case(h)
        c.options.poison = "nan"
        text = worker._traced(tr, c, torch.device("cpu"), "dispatch")
        self.assertIn("non-finite values found", text)
        self.assertIn("first backward op with a non-finite output", text)
        self.assertRegex(text, r"backward mul")


class BenchTest(unittest.TestCase):
    def test_split_names_every_part(self):
        # the per-run split the device script reads: every part, a total, fresh shapes too.
        # A process of its own, as it is used: on a GPU the poisoning allocator must be
        # installed before CUDA is initialised, which other tests of this process may have done.
        from moecheck import bench

        for extra in ([], ["--fresh-shapes", "--act", "gptoss"]):
            with self.subTest(extra=extra):
                p = subprocess.run([sys.executable, "-m", "moecheck.bench", "--target", "ledger:fixed", "--reps", "3",
                                    "--warmup", "1", *extra], capture_output=True, text=True, env=env(), timeout=120)
                self.assertEqual(p.returncode, 0, p.stderr)
                text = p.stdout
                for part in bench.PARTS:
                    self.assertRegex(text, rf"\n  {part} +[0-9.]+ ms")
                self.assertRegex(text, r"per run +[0-9.]+ ms = [0-9]+ runs/s")

    def test_bad_shape_is_usage_error(self):
        from moecheck import bench

        with self.assertRaises(SystemExit) as cm, io.StringIO() as err:
            stderr, sys.stderr = sys.stderr, err
            try:
                bench.main(["--target", "ledger:fixed", "--shape", "T=0"])
            finally:
                sys.stderr = stderr
        self.assertEqual(cm.exception.code, 2)


# CI sets MOECHECK_REQUIRE_PYTHON=1: then these run (and fail without Go) instead of skipping.
REQUIRE = os.environ.get("MOECHECK_REQUIRE_PYTHON") == "1"


@unittest.skipUnless(REQUIRE or (shutil.which("go") and os.path.exists(os.path.join(ROOT, "cmd", "moecheck", "main.go"))),
                     "needs Go and the moecheck checkout")
class GoCLITest(unittest.TestCase):
    """The Go CLI drives this worker: moecheck.check (the Python entry point) end to end."""

    @classmethod
    def setUpClass(cls):
        cls.bin = os.path.join(ROOT, ".device", "moecheck-pytest")
        os.makedirs(os.path.dirname(cls.bin), exist_ok=True)
        subprocess.run(["go", "build", "-o", cls.bin, "./cmd/moecheck"], cwd=ROOT, check=True)

    def check(self, target, **kw):
        import moecheck

        e = env()
        e["MOECHECK_CLI"] = self.bin
        e["MOECHECK_PYTHON"] = sys.executable
        return moecheck.check(target, env=e, timeout=600, **kw)

    def test_merged_ledger_caught_and_shrunk(self):
        r = self.check("ledger:45621-as-merged", cases=20, dtypes=["fp32"])
        self.assertEqual(r.returncode, 1, r.output)
        self.assertFalse(r.passed)
        self.assertEqual(r.failing[0]["property"], "matches")
        self.assertIn("T=1 ", r.failing[0]["shrunk"])
        self.assertRegex(r.output, r"sentinel-drw drw: .* got NaN")

    def test_clamp_ledger_caught(self):
        r = self.check("ledger:clamp-sentinels", cases=20, dtypes=["fp32"])
        self.assertEqual(r.returncode, 1, r.output)
        self.assertRegex(r.output, r"sentinel-drw drw: .*want 0")

    def test_fixed_passes(self):
        # aligned: H and I multiples of 8; fp32 only by the --dtype; every case is fitted inside
        r = self.check("ledger:fixed", cases=15, dtypes=["fp32"])
        self.assertEqual(r.returncode, 0, r.output)
        self.assertEqual(r.cases, 15)
        self.assertEqual(r.failures, 0)

    def test_no_sentinels_runs_clean(self):
        # A correct path that raises on sentinel ids: without --no-sentinels its sentinel cases
        # fail (raised); with it every generated and shrunk case is sentinel-free and passes.
        r = self.check("callable:moecheck.testing:fixed_rejects_sentinels", cases=12, dtypes=["fp32"])
        self.assertEqual(r.returncode, 1, r.output)
        self.assertIn("raised", r.output)
        r = self.check("callable:moecheck.testing:fixed_rejects_sentinels --no-sentinels", cases=12, dtypes=["fp32"])
        self.assertEqual(r.returncode, 0, r.output)
        self.assertEqual((r.cases, r.failures), (12, 0), r.output)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(shutil.which("cc") or shutil.which("gcc"), "needs a C compiler")
class AllocatorBuildTest(unittest.TestCase):
    """The CUDA poisoning allocator compiles with the machine's compiler and loads; its policy
    and counters work without a GPU (the CUDA entry points are resolved at the first malloc)."""

    def test_compile_and_load(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = poison.compile_allocator(cache_dir=d)
            self.assertTrue(os.path.exists(path))
            self.assertEqual(poison.compile_allocator(cache_dir=d), path, "cached by source hash")
            a = poison.Allocator(path)
            for pol in poison.POLICIES:
                a.set_policy(pol, "bf16")
            self.assertEqual(a.stats(), {"allocations": 0, "filled": 0, "stale": 0, "failed": 0})
