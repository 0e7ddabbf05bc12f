"""moecheck.transfer: one-copy uploads and downloads through pinned buffers (CUDA only: pinned
memory needs a device; skipped on a CPU-only machine) and the sync-mode plumbing."""

from __future__ import annotations

import threading
import unittest

import torch

from moecheck import transfer

CUDA = torch.cuda.is_available()


@unittest.skipUnless(CUDA, "pinned host memory and device copies need CUDA")
class TestStaging(unittest.TestCase):
    def tensors(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        return [
            torch.randn(3, 5, generator=g).to(torch.bfloat16),
            torch.randn(0, generator=g),  # empty: no bytes, still a view of the right shape
            torch.randint(-7, 7, (7,), generator=g, dtype=torch.int32),
            torch.randn(2, 3, 33, generator=g).to(torch.float16),
            torch.randn(1, generator=g),
            torch.randn(1000, 3, generator=g).t(),  # non-contiguous source
        ]

    def test_upload_round_trip(self) -> None:
        dev = torch.device("cuda", torch.cuda.current_device())
        for blocking in (False, True):
            st = transfer.Staging(dev, blocking)
            for seed in range(3):  # the buffers are reused (and grown) across runs
                src = self.tensors(seed)
                got = st.upload(src)
                for a, b in zip(src, got):
                    self.assertEqual(b.device.type, "cuda")
                    self.assertEqual(a.dtype, b.dtype)
                    self.assertEqual(tuple(a.shape), tuple(b.shape))
                    self.assertTrue(torch.equal(a, b.cpu()), f"seed {seed} blocking {blocking}")

    def test_download_is_own_copy(self) -> None:
        dev = torch.device("cuda", torch.cuda.current_device())
        st = transfer.Staging(dev, True)
        a = st.download(torch.full((100,), float("nan"), device=dev))  # NaN poison first
        b = st.download(torch.arange(100, device=dev, dtype=torch.float32))
        self.assertTrue(torch.isnan(a).all(), "the first result changed when the buffer was reused")
        self.assertTrue(torch.equal(b, torch.arange(100, dtype=torch.float32)))

    def test_threads_own_stagings(self) -> None:
        dev = torch.device("cuda", torch.cuda.current_device())
        ss = transfer.Stagings(blocking=True)
        seen, errs = {}, []

        def lane(k: int) -> None:
            try:
                with torch.cuda.stream(torch.cuda.Stream(dev)):
                    st = ss.get(dev)
                    seen[k] = id(st)
                    for r in range(50):
                        x = torch.full((64 + k,), float(k * 1000 + r))
                        (y,) = st.upload([x])
                        z = st.download(y * 1)
                        if not torch.equal(z, x):
                            errs.append(f"lane {k} run {r}: {z[:3]} want {x[:3]}")
            except Exception as e:  # reported below
                errs.append(f"lane {k}: {e}")

        ths = [threading.Thread(target=lane, args=(k,)) for k in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        self.assertEqual(errs, [])
        self.assertEqual(len(set(seen.values())), 4, "lanes shared a staging buffer")


class TestSyncMode(unittest.TestCase):
    def test_cpu_has_no_blocking_sync(self) -> None:
        self.assertEqual(transfer.set_blocking_sync(torch.device("cpu")), "not a CUDA device")

    def test_configure(self) -> None:
        # on the CPU nothing is asked of a driver and the hello says nothing about waits
        st = transfer.configure(torch.device("cpu"), "spin", "pageable")
        self.assertEqual((st.note, st.blocking, st.pinned), ("", False, False))
        st = transfer.configure(torch.device("cpu"))
        self.assertEqual((st.note, st.blocking, st.pinned), ("", True, True))


if __name__ == "__main__":
    unittest.main()
