"""The worker's lanes (MOECHECK_WORKER_LANES) over real pipes from a Python client: every lane's
hello, concurrent cases on all lanes bit for bit, per-lane poison policies, a lane's bye, the
crash of a (simulated) device fault, and the errors of a bad lane count or missing pipes."""

import os
import subprocess
import sys
import threading
import unittest

import torch

from moecheck import poison, worker
from moecheck import protocol as P

from .test_worker import case, env


class LaneWorker:
    """A worker of n lanes: lane 0 on stdin/stdout, lane k on descriptors 2k+1 / 2k+2."""

    def __init__(self, n, *args):
        pipes = []  # (child read end, parent write end), (parent read end, child write end)
        child_fds = {}
        for k in range(1, n):
            r_req, w_req = os.pipe()
            r_rep, w_rep = os.pipe()
            pipes.append((w_req, r_rep))
            child_fds[2 * k + 1], child_fds[2 * k + 2] = r_req, w_rep
        # every pipe end above the lanes' range, so that placing the lanes' descriptors
        # (dup2 in the child) cannot overwrite an end not placed yet
        moved = {fd: os.dup(src) for fd, src in child_fds.items()}
        hi = 2 * n + 10
        high = {}
        for fd, src in moved.items():
            high[fd] = os.dup2(src, hi + fd) if src <= 2 * n else src

        def place():
            for fd, src in high.items():
                os.dup2(src, fd)

        e = env()
        e[worker.LANES_ENV] = str(n)
        self.p = subprocess.Popen([sys.executable, "-m", "moecheck.worker", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, close_fds=False,
                                  preexec_fn=place)
        for fd in set(child_fds.values()) | set(moved.values()) | set(high.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.lanes = [(self.p.stdin, self.p.stdout)] + [(os.fdopen(w, "wb"), os.fdopen(r, "rb")) for w, r in pipes]
        self.hellos = [P.read_frame(r) for _, r in self.lanes]

    def run(self, k, rid, h, opts, t):
        w, r = self.lanes[k]
        P.write_frame(w, P.encode_request(rid, h, opts, t))
        w.flush()
        return P.read_frame(r)

    def bye(self, k):
        w, _ = self.lanes[k]
        P.write_frame(w, P.Frame({"type": "bye"}))
        w.close()

    def wait(self):
        rc = self.p.wait(timeout=60)
        self.stderr = self.p.stderr.read().decode(errors="replace")
        for w, r in self.lanes:
            for f in (w, r):
                try:
                    f.close()
                except OSError:
                    pass
        self.p.stderr.close()
        return rc


class LanesTest(unittest.TestCase):
    def test_lanes_from_env(self):
        for name, v, want in [("lanes-env/unset", None, 1), ("lanes-env/empty", " ", 1), ("lanes-env/four", "4", 4)]:
            with self.subTest(name):
                self.assertEqual(worker.lanes_from_env({} if v is None else {worker.LANES_ENV: v}), want)
        for name, v in [("lanes-env/zero", "0"), ("lanes-env/huge", "257"), ("lanes-env/word", "two")]:
            with self.subTest(name):
                with self.assertRaisesRegex(ValueError, "between 1 and 256"):
                    worker.lanes_from_env({worker.LANES_ENV: v})

    def test_dispatch_poison_per_thread(self):
        # the CPU poisoning of each lane (a thread) follows its own case's policy, and cases
        # under the dispatch mode take turns (torch 1.13's Python dispatch raced between
        # threads: an INTERNAL ASSERT in PyHandleCache.h in one CI run)
        bad, inside, most = [], [0], [0]
        lock = threading.Lock()
        start = threading.Barrier(4)

        def lane(policy, ok):
            start.wait()
            for r in range(5):
                with poison.poisoned("dispatch", policy, torch.float32):
                    with lock:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    for i in range(40):
                        if not ok(torch.empty(64)):
                            bad.append((policy, r, i))
                    with lock:
                        inside[0] -= 1

        nan = lambda t: bool(t.isnan().all())  # noqa: E731
        inf = lambda t: bool((t == float("inf")).all())  # noqa: E731
        ts = [threading.Thread(target=lane, args=a) for a in (("nan", nan), ("+inf", inf), ("nan", nan), ("+inf", inf))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(bad, [])
        self.assertEqual(most[0], 1, "two cases were inside the dispatch mode at once")

    def test_lanes_serve_concurrently(self):
        w = LaneWorker(3, "--target", "callable:moecheck.testing:echo")
        try:
            for k, hello in enumerate(w.hellos):
                self.assertEqual((hello.header["type"], hello.header.get("lanes")), ("hello", 3), f"lane {k}")
            problems = []

            def lane(k):
                for i in range(5):
                    h = P.CaseHeader(t=3 + k, h=4, i=2, e=2, k=2, dtype=("bf16", "fp32", "bf16")[k])
                    c = case(h, seed=10 * k + i)
                    r = w.run(k, i + 1, h, P.Options(poison=("nan", "+inf", "zeros")[k]), c.tensors)
                    if r.header.get("type") != "result" or r.header.get("id") != i + 1:
                        problems.append(f"lane {k} run {i}: {r.header}")
                        continue
                    y = P.decode_tensor(r.payload, r.header["tensors"][0])
                    if not torch.equal(y.reshape(-1).view(torch.uint8), c.tensors["x"].reshape(-1).view(torch.uint8)):
                        problems.append(f"lane {k} run {i}: y differs from x")

            ts = [threading.Thread(target=lane, args=(k,)) for k in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(problems, [])
            # a lane's bye ends that lane only
            w.bye(1)
            h = P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="bf16")
            self.assertEqual(w.run(2, 9, h, P.Options(), case(h).tensors).header["type"], "result")
        finally:
            for k in (0, 2):
                w.bye(k)
            self.assertEqual(w.wait(), 0, w.stderr)

    def test_fault_answers_crash_and_exits(self):
        w = LaneWorker(2, "--target", "callable:moecheck.testing:lanes_fault")
        h = P.CaseHeader(t=13, h=4, i=2, e=2, k=2, dtype="fp32")
        r = w.run(1, 1, h, P.Options(), case(h).tensors)
        self.assertEqual((r.header["type"], r.header["kind"]), ("error", "crash"))
        self.assertIn("simulated device fault", r.header["detail"])
        self.assertIsNone(P.read_frame(w.lanes[0][1]), "lane 0 must see the process end")
        self.assertEqual(w.wait(), 3)

    def test_malformed_frame_ends_process(self):
        # as the Go worker's ServeLanes: a lane's own error ends the process, not the lane alone
        w = LaneWorker(2, "--target", "callable:moecheck.testing:echo")
        lw, _ = w.lanes[1]
        lw.write(b"\xff\xff\xff\x7f garbage")
        lw.flush()
        lw.close()
        self.assertIsNone(P.read_frame(w.lanes[0][1]), "lane 0 must see the process end")
        self.assertEqual(w.wait(), 3)
        self.assertIn("malformed frame", w.stderr)

    def test_bench_lanes(self):
        # the in-process lanes rate the device script reads: a line per lane count
        import io

        from moecheck import bench

        # a process of its own (the poisoning allocator needs CUDA uninitialised on a GPU)
        p = subprocess.run([sys.executable, "-m", "moecheck.bench", "--target", "ledger:fixed", "--reps", "3",
                            "--warmup", "1", "--lanes", "1,3"], capture_output=True, text=True, env=env(), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for n in (1, 3):
            self.assertRegex(p.stdout, rf": {n} lane\(s\): [0-9]+ runs/s in one process")
        with self.assertRaises(SystemExit) as cm, io.StringIO() as err:
            stderr, sys.stderr = sys.stderr, err
            try:
                bench.main(["--target", "ledger:fixed", "--lanes", "0"])
            finally:
                sys.stderr = stderr
        self.assertEqual(cm.exception.code, 2)

    def test_missing_lane_pipes(self):
        e = env()
        e[worker.LANES_ENV] = "2"
        p = subprocess.run([sys.executable, "-m", "moecheck.worker", "--target", "callable:moecheck.testing:echo"],
                           env=e, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"descriptor 3", p.stderr)


if __name__ == "__main__":
    unittest.main()
