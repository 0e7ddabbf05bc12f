"""Protocol: frames, tensor codec and case headers (mirrors gpu/worker's Go codec)."""

import io
import json
import struct
import unittest

import torch

from moecheck import protocol as P


def sample_case(h: P.CaseHeader, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    t = {}
    for name, (dt, shape) in P.expected_inputs(h).items():
        if dt == "i32":
            t[name] = torch.randint(0, h.e + 1, shape, generator=g, dtype=torch.int32)
        elif dt == "i64":
            t[name] = torch.randint(0, 4 * h.e, shape, generator=g, dtype=torch.int64)
        else:
            t[name] = torch.randn(shape, generator=g).to(P.WIRE_DTYPES[dt])
    return t


class FrameTest(unittest.TestCase):
    def test_round_trip(self):
        for name, payload in [("empty", b""), ("bytes", bytes(range(256)) * 3)]:
            with self.subTest(name):
                buf = io.BytesIO()
                P.write_frame(buf, P.Frame({"type": "hello", "version": 2}, payload))
                buf.seek(0)
                f = P.read_frame(buf)
                self.assertEqual(f.header, {"type": "hello", "version": 2})
                self.assertEqual(f.payload, payload)
                self.assertIsNone(P.read_frame(buf), "clean end after the frame")

    def test_layout_is_little_endian(self):
        buf = io.BytesIO()
        P.write_frame(buf, P.Frame({"type": "bye"}, b"\x01\x02"))
        b = buf.getvalue()
        (hl,) = struct.unpack("<I", b[:4])
        self.assertEqual(json.loads(b[4:4 + hl]), {"type": "bye"})
        self.assertEqual(struct.unpack("<Q", b[4 + hl:12 + hl])[0], 2)

    def test_malformed(self):
        for name, raw in [
            ("header-length-zero", struct.pack("<I", 0)),
            ("header-too-long", struct.pack("<I", P.MAX_HEADER_BYTES + 1)),
            ("truncated-header", struct.pack("<I", 10) + b"{}"),
            ("not-json", struct.pack("<I", 3) + b"abc" + struct.pack("<Q", 0)),
            ("not-object", struct.pack("<I", 2) + b"[]" + struct.pack("<Q", 0)),
            ("truncated-payload", struct.pack("<I", 2) + b"{}" + struct.pack("<Q", 5) + b"ab"),
            ("payload-too-long", struct.pack("<I", 2) + b"{}" + struct.pack("<Q", P.MAX_PAYLOAD_BYTES + 1)),
        ]:
            with self.subTest(name):
                with self.assertRaises(P.ProtocolError):
                    P.read_frame(io.BytesIO(raw))


class CodecTest(unittest.TestCase):
    def test_request_round_trip_keeps_bits(self):
        for dt in ("bf16", "fp16", "fp32"):
            for bias, glob in ((False, False), (True, True)):
                with self.subTest(dtype=dt, bias=bias):
                    h = P.CaseHeader(t=3, h=5, i=2, e=3, k=2, dtype=dt, bias=bias, global_routing=glob,
                                     act="gptoss" if bias else "swiglu", layout="transposed" if bias else "standard",
                                     ep_world=2 if glob else 1, ep_rank=1 if glob else 0)
                    t = sample_case(h)
                    # a NaN with a payload must survive
                    bits = t["x"].view(torch.int16 if dt != "fp32" else torch.int32)
                    bits.view(-1)[0] = 0x7FC5 if dt == "bf16" else (0x7E05 if dt == "fp16" else 0x7FC50000)
                    f = P.encode_request(7, h, P.Options(poison="nan", poison_seed=3, faults=[], stages=True), t)
                    buf = io.BytesIO()
                    P.write_frame(buf, f)
                    buf.seek(0)
                    c = P.decode_request(P.read_frame(buf))
                    self.assertEqual(c.header, h)
                    self.assertEqual(c.options.poison, "nan")
                    self.assertTrue(c.options.stages)
                    for k, v in t.items():
                        it = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[v.element_size()]
                        self.assertTrue(torch.equal(c.tensors[k].view(it), v.view(it)), k)

    def test_case_keys_both_versions(self):
        h = P.CaseHeader(t=1, h=2, i=3, e=4, k=5)
        v2, v1 = h.to_json(2), h.to_json(1)
        self.assertIn("t", v2)
        self.assertNotIn("T", v2)
        self.assertIn("T", v1)
        self.assertEqual(P.CaseHeader.parse(v1), h)
        self.assertEqual(P.CaseHeader.parse(v2), h)

    def test_bad_requests(self):
        h = P.CaseHeader(t=2, h=3, i=2, e=2, k=2, dtype="fp32")
        good = P.encode_request(1, h, P.Options(), sample_case(h))

        def mutate(fn):
            f = P.Frame(json.loads(json.dumps(good.header)), good.payload)
            fn(f)
            return f

        for name, fn, want in [
            ("missing-tensor", lambda f: f.header.__setitem__("tensors", f.header["tensors"][1:]), "missing"),
            ("wrong-dtype", lambda f: f.header["tensors"][0].__setitem__("dtype", "bf16"), "dtype"),
            ("outside-payload", lambda f: f.header["tensors"][0].__setitem__("offset", 10 ** 9), "outside"),
            ("bad-size", lambda f: f.header["case"].__setitem__("h", 4), "has 6 elements, want 8"),
            ("bad-act", lambda f: f.header["case"].__setitem__("act", "gelu"), "act"),
            ("zero-size", lambda f: f.header["case"].__setitem__("t", 0), "at least 1"),
            ("negative", lambda f: f.header["case"].__setitem__("e", -1), "non-negative"),
            ("not-run", lambda f: f.header.__setitem__("type", "result"), "not a run"),
        ]:
            with self.subTest(name):
                with self.assertRaisesRegex(P.ProtocolError, want):
                    P.decode_request(mutate(fn))

    def test_ids_beyond_sentinel_rejected(self):
        h = P.CaseHeader(t=2, h=3, i=2, e=2, k=2, dtype="fp32")
        t = sample_case(h)
        t["ids"][0, 0] = 3  # E = 2 is the sentinel; 3 is out of range
        with self.assertRaisesRegex(P.ProtocolError, "ids outside"):
            P.decode_request(P.encode_request(1, h, P.Options(), t))


if __name__ == "__main__":
    unittest.main()
