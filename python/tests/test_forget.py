"""The worker's forget request (docs/gpu.md "Forget", docs/python.md "State between cases"):
the wire format over real pipes, what a forget drops (in process, the CUDA allocator faked on
the CPU), and, on a CUDA machine, the poisoning allocator's per-stream release: after a forget
a stale-policy allocation on the lane's stream is a fresh, poison-filled block, not one the
lane's earlier case freed, while another lane's stream keeps its blocks."""

import gc
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import weakref
from typing import List
from unittest import mock

import torch

from moecheck import poison, targets, testing, worker
from moecheck import protocol as P

from .test_worker import WorkerClient, case, env


def _frames(*fs: P.Frame) -> io.BytesIO:
    b = io.BytesIO()
    for f in fs:
        P.write_frame(b, f)
    b.seek(0)
    return b


def _replies(out: io.BytesIO) -> List[P.Frame]:
    out.seek(0)
    got = []
    while True:
        f = P.read_frame(out)
        if f is None:
            return got
        got.append(f)


def _target() -> targets.Target:
    return targets.resolve("callable:moecheck.testing:echo", torch.device("cpu"))


class ForgetWireTest(unittest.TestCase):
    def test_forget_over_pipes(self):
        # forget-wire: the hello declares forget; a forget (before any run too) is answered
        # forgot with its id, no tensors, no payload; one with tensors is a bad_request naming
        # them and the worker goes on; runs after a forget give the same bits.
        w = WorkerClient("--target", "callable:moecheck.testing:echo")
        try:
            self.assertIs(w.hello.header.get("forget"), True)
            h = P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="bf16")
            c = case(h)
            for rid in (1, 3):
                P.write_frame(w.p.stdin, P.Frame({"type": "forget", "id": rid}))
                r = P.read_frame(w.p.stdout)
                self.assertEqual(r.header, {"type": "forgot", "id": rid})
                self.assertEqual(r.payload, b"")
                got = w.run(rid + 1, h, P.Options(poison="nan"), c.tensors)
                self.assertEqual((got.header["type"], got.header["id"]), ("result", rid + 1))
                if rid == 1:
                    first = got.payload
                else:
                    self.assertEqual(got.payload, first, "a run after a forget differs from the one before")
            x = P.tensor_bytes(c.tensors["x"])
            P.write_frame(w.p.stdin, P.Frame({"type": "forget", "id": 9, "tensors": [
                {"name": "x", "dtype": "bf16", "shape": [h.t, h.h], "offset": 0, "bytes": len(x)}]}, x))
            r = P.read_frame(w.p.stdout)
            self.assertEqual((r.header["type"], r.header["id"], r.header["kind"]), ("error", 9, "bad_request"))
            self.assertIn("a forget request with 1 tensors", r.header["detail"])
            got = w.run(10, h, P.Options(poison="nan"), c.tensors)
            self.assertEqual(got.payload, first)
        finally:
            self.assertEqual(w.close(), 0)

    def test_protocol_1_declares_forget(self):
        # forget-v1: forget is optional in any version (the Go client reads it from a
        # version-1 hello too).
        w = WorkerClient("--target", "callable:moecheck.testing:echo", "--protocol", "1")
        try:
            self.assertEqual(w.hello.header["version"], 1)
            self.assertIs(w.hello.header.get("forget"), True)
        finally:
            self.assertEqual(w.close(), 0)


class ForgetDropsTest(unittest.TestCase):
    def _serve(self, method, reqs, forget_stream):
        t = _target()
        out = io.BytesIO()
        with mock.patch.object(poison, "forget_stream", forget_stream):
            rc = worker.serve(t, _frames(*reqs), out, torch.device("cpu"), method, 2, dict(t.capabilities), io.StringIO())
        return rc, _replies(out)[1:]  # after the hello

    def test_allocator_stream_released_per_forget(self):
        # forget-allocator: under the allocator method every forget releases the lane's stream
        # (poison.forget_stream, faked here: it needs CUDA) before forgot is written; a
        # refused forget releases nothing; the other methods release nothing.
        for method, want in (("allocator", 2), ("dispatch", 0), ("fill-uninitialized", 0), ("none", 0)):
            with self.subTest(method=method):
                calls = []
                reqs = [P.Frame({"type": "forget", "id": 1}),
                        P.Frame({"type": "forget", "id": 2, "tensors": [{"name": "x"}]}, b"\0\0"),
                        P.Frame({"type": "forget", "id": 3})]
                rc, got = self._serve(method, reqs, lambda d: calls.append(d) or 0)
                self.assertEqual(rc, 0)
                self.assertEqual([(f.header["type"], f.header["id"]) for f in got],
                                 [("forgot", 1), ("error", 2), ("forgot", 3)])
                self.assertIn("1 tensors and 2 payload bytes", got[1].header["detail"])
                self.assertEqual(len(calls), want)

    def test_forget_failure_is_internal_device_fault_exits(self):
        # forget-fails: a forget that fails answers internal naming the failure, and the worker
        # goes on; a device fault surfacing in it (the context is lost) ends the lane with
        # status 3 and no reply (the client replaces the worker).
        def boom(d):
            raise RuntimeError("release refused")

        rc, got = self._serve("allocator", [P.Frame({"type": "forget", "id": 4}), P.Frame({"type": "forget", "id": 5})], boom)
        self.assertEqual(rc, 0)
        self.assertEqual([(f.header["type"], f.header.get("kind")) for f in got], [("error", "internal")] * 2)
        self.assertIn("release refused", got[0].header["detail"])

        def fault(d):
            raise testing.SimulatedDeviceFault("lost")

        rc, got = self._serve("allocator", [P.Frame({"type": "forget", "id": 6}), P.Frame({"type": "forget", "id": 7})], fault)
        self.assertEqual((rc, got), (3, []))

    def test_forget_drops_modules_and_gradients(self):
        # forget-modules: after a run the lane's cached module holds the run's weight gradients;
        # a forget drops them and the module at once (no garbage collection needed: nothing of
        # theirs can reach a free list later), and the next run builds a fresh module.
        t = _target()
        dev = torch.device("cpu")
        h = P.CaseHeader(t=3, h=4, i=2, e=2, k=2, dtype="fp32")
        c = case(h)
        before = {k: v.clone() for k, v in targets.run_case(t, c, dev, "none").items()}
        (m,) = t._modules.values()
        g = m.gate_up_proj.grad
        self.assertIsNotNone(g)
        refs = [weakref.ref(m), weakref.ref(g)]
        del m, g
        was = gc.isenabled()
        gc.disable()
        try:
            worker.forget(t, dev, "dispatch")
            self.assertEqual(t._modules, {})
            self.assertEqual([r() for r in refs], [None, None], "the module or its gradient outlived the forget")
        finally:
            if was:
                gc.enable()
        after = targets.run_case(t, c, dev, "none")
        self.assertEqual(len(t._modules), 1)
        for k in before:
            self.assertTrue(torch.equal(before[k].view(torch.int32), after[k].view(torch.int32)), k)


_CUDA_CHECK = r"""
import sys
import torch
from moecheck import poison, targets, worker

dev = torch.device("cuda", 0)
a = poison.install_allocator()  # before the first CUDA allocation
torch.cuda.set_device(dev)
n = 1 << 16  # fp32 elements: 256 KiB blocks
HUGE = 0x7F7FFFFF  # the stale policy's fill of a fresh block (fp32)


def bits(t):
    return t.view(torch.int32).cpu()


def freed_block(s, value):
    # a block of n fp32 holding value, freed on stream s (cached for s)
    with torch.cuda.stream(s):
        x = torch.full((n,), value, device=dev)
        s.synchronize()
        del x


def stale_alloc(s):
    with torch.cuda.stream(s):
        a.set_policy("stale", "fp32", int(s.cuda_stream))
        y = torch.empty(n, device=dev)
        s.synchronize()
        return y


lane, other = torch.cuda.Stream(dev), torch.cuda.Stream(dev)
one_half = bits(torch.tensor([1.5]))[0].item()
two_half = bits(torch.tensor([2.5]))[0].item()
# the control: without a forget the stale policy hands the lane's freed block back unfilled
freed_block(lane, 1.5)
y = stale_alloc(lane)
assert bool((bits(y) == one_half).all()), "stale policy: the freed block was not handed back (the check could not fail)"
del y
# the previous case: blocks freed on both lanes' streams
freed_block(lane, 1.5)
freed_block(other, 2.5)
with torch.cuda.stream(lane):
    a.set_policy("stale", "fp32", int(lane.cuda_stream))
    assert a.cached_blocks(int(lane.cuda_stream), 0) >= 1
    t = targets.resolve("callable:moecheck.testing:echo", dev)
    worker.forget(t, dev, "allocator")  # what the lane's forget request runs
    assert a.cached_blocks(int(lane.cuda_stream), 0) == 0, "the lane's blocks were not released"
    # the lane's policy is a fresh stream's (zeros) again: a size never freed is zero-filled
    # (under the stale policy left set it would get the huge fill)
    z = torch.empty(2 * n, device=dev)
    lane.synchronize()
    assert bool((bits(z) == 0).all()), "after a forget the lane's policy is not reset to zeros"
    del z  # cached under its own size: no block of n elements
y = stale_alloc(lane)
got = bits(y)
assert bool((got == HUGE).all()), f"after a forget a stale allocation read {hex(got[0].item() & 0xFFFFFFFF)}, want the huge fill"
assert a.cached_blocks(int(other.cuda_stream), 0) >= 1, "the other lane's blocks were released"
w = stale_alloc(other)
assert bool((bits(w) == two_half).all()), "the other lane's freed block was not kept"
print("forget-cuda: ok", a.stats())
"""


@unittest.skipUnless(torch.cuda.is_available(), "needs CUDA (the poisoning allocator)")
class ForgetCUDATest(unittest.TestCase):
    def test_stale_after_forget_is_fresh(self):
        # forget-cuda: in a process of its own (the allocator must be installed before the
        # first CUDA allocation). A control first: without a forget the stale policy hands the
        # lane's freed block back with its values; after worker.forget on the lane's stream
        # the stream holds no cached block, its policy is zeros again, and a stale allocation
        # is a fresh block filled with the huge pattern; the other lane's stream keeps its
        # block (its stale allocation reads its own earlier values).
        r = subprocess.run([sys.executable, "-c", _CUDA_CHECK], capture_output=True, text=True, env=env(), timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("forget-cuda: ok", r.stdout)


_FAKE_CUDA = r"""
/* The seven CUDA entry points poison_alloc.c resolves, on host memory (a test double). */
#include <stdlib.h>
#include <string.h>
int fake_frees = 0;
static int cur = 0;
int cudaMalloc(void **p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
int cudaFree(void *p) { fake_frees++; free(p); return 0; }
int cudaSetDevice(int d) { cur = d; return 0; }
int cudaGetDevice(int *d) { *d = cur; return 0; }
int cuMemsetD32Async(unsigned long long d, unsigned int v, size_t n, void *s) {
  for (size_t i = 0; i < n; i++) memcpy((char *)(size_t)d + 4 * i, &v, 4);
  return 0;
}
int cuMemsetD16Async(unsigned long long d, unsigned short v, size_t n, void *s) {
  for (size_t i = 0; i < n; i++) memcpy((char *)(size_t)d + 2 * i, &v, 2);
  return 0;
}
int cuMemsetD8Async(unsigned long long d, unsigned char v, size_t n, void *s) {
  memset((void *)(size_t)d, v, n);
  return 0;
}
"""

_FAKE_CHECK = r"""
import ctypes, sys
fake = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # resolved by the allocator's dlsym
lib = ctypes.CDLL(sys.argv[2])
lib.moecheck_malloc.restype = ctypes.c_void_p
lib.moecheck_malloc.argtypes = [ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
lib.moecheck_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
lib.moecheck_set_policy.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_int]
for f in (lib.moecheck_release_stream, lib.moecheck_cached_blocks):
    f.argtypes = [ctypes.c_int, ctypes.c_void_p]
    f.restype = ctypes.c_int
frees = ctypes.c_int.in_dll(fake, "fake_frees")
N, HUGE = 1024, 0x7F7FFFFF
A, B = 0x1000, 0x2000  # two lanes' streams
for s in (A, B):
    assert lib.moecheck_set_policy(s, HUGE, 4, HUGE, 1) == 0  # stale


def case(stream, device, byte):
    # a run's block on stream: what it reads first, then its values written and freed
    p = lib.moecheck_malloc(N, device, stream)
    got = ctypes.string_at(p, N)
    ctypes.memset(p, byte, N)
    lib.moecheck_free(p, N, device, stream)
    return got


fresh = HUGE.to_bytes(4, "little") * (N // 4)
assert case(A, 0, 0x11) == fresh
assert case(A, 0, 0x12) == b"\x11" * N, "control: the stale policy hands the lane's freed block back"
assert case(B, 0, 0x22) == fresh
assert case(A, 1, 0x33) == fresh  # the same stream on another device
assert (lib.moecheck_cached_blocks(0, A), lib.moecheck_cached_blocks(0, B), lib.moecheck_cached_blocks(1, A)) == (1, 1, 1)
assert lib.moecheck_release_stream(0, A) == 1 and frees.value == 1
assert (lib.moecheck_cached_blocks(0, A), lib.moecheck_cached_blocks(0, B), lib.moecheck_cached_blocks(1, A)) == (0, 1, 1)
assert case(A, 0, 0x44) == fresh, "after the release the lane's stale allocation read its earlier case"
assert case(B, 0, 0x55) == b"\x22" * N, "the other lane's block was released"
assert case(A, 1, 0x66) == b"\x33" * N, "the stream's block on another device was released"
assert lib.moecheck_release_stream(0, A) == 1 and lib.moecheck_release_stream(0, A) == 0 and frees.value == 2
print("fake-cuda: ok")
"""


@unittest.skipUnless(shutil.which("cc") or shutil.which("gcc"), "needs a C compiler")
class ReleaseStreamTest(unittest.TestCase):
    def test_release_one_stream_fake_cuda(self):
        # release-stream: poison_alloc.c's bookkeeping on the CPU, its CUDA entry points a test
        # double on host memory (in a process of its own: the allocator's state is the
        # library's). The stale policy hands a lane's freed block back (the control);
        # moecheck_release_stream frees that stream's blocks on that device only (through
        # cudaFree), after which the lane's stale allocation is a fresh, huge-filled block;
        # another stream's and another device's blocks stay.
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "fake_cuda.c")
            with open(src, "w") as f:
                f.write(_FAKE_CUDA)
            cc = shutil.which("cc") or shutil.which("gcc")
            fake = os.path.join(d, "fake_cuda.so")
            subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", fake, src], check=True)
            lib = poison.compile_allocator(cache_dir=d)
            r = subprocess.run([sys.executable, "-c", _FAKE_CHECK, fake, lib], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("fake-cuda: ok", r.stdout)


if __name__ == "__main__":
    unittest.main()
