package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/poison"
	"github.com/moecheck/moecheck/moe"
)

// stagedResult is fakeResult with every stage, poisoned with signature NaNs, ±Inf and −0
// among ordinary values, so that a lost payload bit shows.
func stagedResult(c *moe.Case) *gpu.Result {
	r := fakeResult(c)
	d, S := c.DType, c.S()
	r.Stages = &gpu.Stages{Perm: make([]int32, S), Offsets: make([]int32, c.E)}
	for i := range r.Stages.Perm {
		r.Stages.Perm[i] = int32(S - 1 - i)
	}
	for e := range r.Stages.Offsets {
		r.Stages.Offsets[e] = int32(e * 3)
	}
	for k, t := range moe.StageTensors() {
		v := make([]float32, c.Len(t))
		for i := range v {
			switch i % 5 {
			case 0:
				v[i] = d.RoundFloat32(poison.NaN(gpu.BufXs + gpu.Buffer(k%4)))
			case 1:
				v[i] = float32(math.Inf(1 - 2*(i%2)))
			case 2:
				v[i] = float32(math.Copysign(0, -1))
			default:
				v[i] = d.RoundFloat32(float32(i*k) / 7)
			}
		}
		r.SetTensor(t, v)
	}
	return r
}

// sameResult reports the first tensor of a and b whose bits differ ("" if none).
func sameResult(a, b *gpu.Result) string {
	for _, t := range append(moe.Outputs(), moe.StageTensors()...) {
		if !bitsEqual(a.Tensor(t), b.Tensor(t)) || (a.Tensor(t) == nil) != (b.Tensor(t) == nil) {
			return t.String()
		}
	}
	if (a.Stages == nil) != (b.Stages == nil) {
		return "stages"
	}
	if a.Stages != nil && (!slices.Equal(a.Stages.Perm, b.Stages.Perm) || !slices.Equal(a.Stages.Offsets, b.Stages.Offsets)) {
		return "plan"
	}
	return ""
}

// reframe rewrites a frame's header (edit) and writes it with its payload (extra bytes
// appended).
func reframe(t *testing.T, f *Frame, extra []byte, edit func(h *Header)) []byte {
	t.Helper()
	g := *f
	g.Header.Tensors = slices.Clone(f.Header.Tensors)
	edit(&g.Header)
	g.Payload = append(slices.Clone(f.Payload), extra...)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, &g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestResultStream: a result written chunk by chunk is byte for byte EncodeResult's frame,
// and reading it chunk by chunk gives DecodeResult's result bitwise (signature NaNs, ±Inf,
// −0, every stage and the plan), or, for a frame it cannot stream, the same error.
func TestResultStream(t *testing.T) {
	const chunk = 64 // bytes: every tensor spans several chunks
	for _, tc := range []struct {
		name   string
		d      moe.DType
		bias   bool
		stages bool
	}{
		{"stream/bf16-stages", moe.BF16, false, true},
		{"stream/fp16-bias-stages", moe.FP16, true, true},
		{"stream/fp32-bias-stages", moe.FP32, true, true},
		{"stream/bf16-no-stages", moe.BF16, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCase(t, tc.d, tc.bias, false)
			r := fakeResult(c)
			if tc.stages {
				r = stagedResult(c)
			}
			var whole, streamed bytes.Buffer
			if err := WriteFrame(&whole, EncodeResult(7, c.Config, r)); err != nil {
				t.Fatal(err)
			}
			if err := writeResult(&streamed, 7, c.Config, r, chunk); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(whole.Bytes(), streamed.Bytes()) {
				t.Fatalf("writeResult wrote %d bytes that differ from EncodeResult's %d", streamed.Len(), whole.Len())
			}
			f, got, err := readReplyIn(bytes.NewReader(whole.Bytes()), maxResultBytes(c.Config), c.Config, chunk)
			if err != nil || got == nil {
				t.Fatalf("readReplyIn: result %v, %v; want a streamed result", got != nil, err)
			}
			if f.Payload != nil || f.Header.ID != 7 || f.Header.Type != TypeResult {
				t.Errorf("frame %+v with %d payload bytes", f.Header, len(f.Payload))
			}
			if s := sameResult(r, got); s != "" {
				t.Errorf("tensor %s changed in the stream", s)
			}
		})
	}
}

// TestResultStreamFallback: frames readReply streams in another order, frames it reads
// whole (so that DecodeResult names the problem, with the words of the whole-frame path),
// and payloads that end early.
func TestResultStreamFallback(t *testing.T) {
	const chunk = 64
	c := testCase(t, moe.BF16, true, false)
	r := stagedResult(c)
	f := EncodeResult(3, c.Config, r)
	for _, tc := range []struct {
		name   string
		extra  []byte
		edit   func(h *Header)
		stream bool   // decoded as it arrived, equal to r
		err    string // else DecodeResult's error ("": its result)
	}{
		{"order/reversed-list", nil, func(h *Header) { slices.Reverse(h.Tensors) }, true, ""},
		{"order/unknown-tensor-skipped", []byte{1, 2, 3, 4, 5, 6, 7, 8}, func(h *Header) {
			h.Tensors = append(h.Tensors, TensorHeader{Name: "extra", DType: "i32", Shape: []int{2}, Offset: int64(len(f.Payload)), Bytes: 8})
		}, true, ""},
		{"order/bias-of-a-case-without", nil, func(h *Header) {}, true, ""},
		{"whole/stage-wrong-dtype", nil, func(h *Header) { h.Tensors[len(h.Tensors)-1].DType = "fp16" }, false, "has dtype fp16, want bf16"},
		{"whole/output-missing", nil, func(h *Header) { h.Tensors = h.Tensors[1:] }, false, `tensor "y" missing`},
		{"whole/offsets-missing", nil, func(h *Header) {
			h.Tensors = slices.DeleteFunc(h.Tensors, func(t TensorHeader) bool { return t.Name == "stage.offsets" })
		}, false, `tensor "stage.offsets" missing`},
		{"whole/overlap-read-as-dx", nil, func(h *Header) { h.Tensors[1].Offset = 0 }, false, ""},
		{"whole/duplicate", nil, func(h *Header) { h.Tensors = append(h.Tensors, h.Tensors[0]) }, false, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.Config
			if tc.name == "order/bias-of-a-case-without" {
				cfg.Bias = false // db1 and db2 are skipped, as DecodeResult skips them
			}
			b := reframe(t, f, tc.extra, tc.edit)
			fr, got, err := readReplyIn(bytes.NewReader(b), MaxPayloadBytes, cfg, chunk)
			if err != nil {
				t.Fatalf("readReplyIn: %v", err)
			}
			if (got != nil) != tc.stream {
				t.Fatalf("streamed %v, want %v", got != nil, tc.stream)
			}
			if tc.stream {
				want, err := DecodeResult(mustRead(t, b), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if s := sameResult(want, got); s != "" {
					t.Errorf("tensor %s differs from DecodeResult's", s)
				}
				return
			}
			res, err := DecodeResult(fr, cfg)
			wres, werr := DecodeResult(mustRead(t, b), cfg)
			if tc.err == "" {
				if err != nil || werr != nil || sameResult(wres, res) != "" {
					t.Errorf("read whole: %v, whole-frame path %v; want the same result", err, werr)
				}
				return
			}
			if err == nil || werr == nil || err.Error() != werr.Error() || !bytes.Contains([]byte(err.Error()), []byte(tc.err)) {
				t.Errorf("error %v, whole-frame path %v, want %q", err, werr, tc.err)
			}
		})
	}
	t.Run("short/payload-ends-mid-tensor", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()[:buf.Len()-len(f.Payload)/2]
		if _, got, err := readReplyIn(bytes.NewReader(b), MaxPayloadBytes, c.Config, chunk); !errors.Is(err, io.ErrUnexpectedEOF) || got != nil {
			t.Errorf("readReplyIn of a short payload: %v (result %v), want %v", err, got != nil, io.ErrUnexpectedEOF)
		}
	})
	t.Run("short/limit", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readReplyIn(bytes.NewReader(buf.Bytes()), int64(len(f.Payload)-1), c.Config, chunk); !errors.Is(err, ErrMalformed) {
			t.Errorf("payload over the limit: %v, want %v", err, ErrMalformed)
		}
	})
}

func mustRead(t *testing.T, b []byte) *Frame {
	t.Helper()
	f, err := ReadFrame(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// streamedCase is a case whose result (fakeResult's, or an echo target's) is larger than one
// stream chunk, so that it is streamed both ways.
func streamedCase(t *testing.T) *moe.Case {
	t.Helper()
	cfg := moe.Config{T: 8, H: 1024, I: 512, E: 3, K: 2, DType: moe.BF16, Act: moe.SwiGLU, Layout: moe.Standard}
	c := casetest.CaseSeeds(t, cfg, 3, 5)
	if _, size := resultTensors(cfg, fakeResult(c)); size <= streamChunk {
		t.Fatalf("result of %d bytes: not above one chunk (%d)", size, streamChunk)
	}
	return c
}

// TestStreamedRun: through a worker process, a result larger than a stream chunk (so
// streamed both ways) arrives bitwise as the backend made it.
func TestStreamedRun(t *testing.T) {
	c := streamedCase(t)
	want := fakeResult(c)
	b := helperWith(t, Version, nil)
	got, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	if err != nil {
		t.Fatal(err)
	}
	if s := sameResult(want, got); s != "" {
		t.Errorf("tensor %s changed on the way", s)
	}
}

// TestStreamMemory: neither side of a streamed result allocates its payload. WriteResult
// allocates its chunk buffers and little else; readReply the Result's tensors, its chunk
// buffers and little else (the whole-frame path allocates the payload, and readN's
// regrowth, on top).
func TestStreamMemory(t *testing.T) {
	cfg := moe.Config{T: 64, H: 2048, I: 768, E: 2, K: 8, EP: moe.EP{World: 8, Rank: 3}, DType: moe.BF16}
	res := streamResult(cfg)
	ts, size := resultTensors(cfg, res)
	tensorBytes := int64(0)
	for _, w := range ts {
		tensorBytes += w.hdr.Bytes / w.elemBytes() * 4 // float32 and int32 in the Result
	}
	slack := int64(streamBuffers*streamChunk) + size/8
	allocated := func(f func()) int64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return int64(b.TotalAlloc - a.TotalAlloc)
	}
	var frame bytes.Buffer
	frame.Grow(int(size) + 1<<20)
	if n := allocated(func() {
		if err := WriteResult(&frame, 1, cfg, res); err != nil {
			t.Fatal(err)
		}
	}); n > slack {
		t.Errorf("WriteResult of a %d-byte payload allocated %d bytes, want at most %d (its chunks)", size, n, slack)
	}
	var got *gpu.Result
	if n := allocated(func() {
		var err error
		if _, got, err = readReply(bytes.NewReader(frame.Bytes()), maxResultBytes(cfg), cfg); err != nil || got == nil {
			t.Fatalf("readReply: streamed %v, %v", got != nil, err)
		}
	}); n > tensorBytes+slack {
		t.Errorf("readReply of a %d-byte payload allocated %d bytes, want at most %d (its tensors %d and chunks)", size, n, tensorBytes+slack, tensorBytes)
	}
	if s := sameResult(res, got); s != "" {
		t.Errorf("tensor %s changed", s)
	}
}
