package worker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// zeroTailResult is a result of cfg's tensors (outputs, plan, every stage) as bits: random
// bits with NaN payloads and infinities, then a zero tail whose length varies by tensor —
// none, part, the whole tensor, a −0 as the very last element (not zero bits: must be sent),
// zeros in the middle followed by a value.
func zeroTailResult(cfg moe.Config) *rawcase.Result {
	d := cfg.DType
	w := d.Bits() / 8
	rng := moe.NewRand(uint64(cfg.T))
	r := &rawcase.Result{}
	fill := func(k int, n int) []byte {
		b := make([]byte, n*w)
		for i := range n {
			u := uint32(rng.Uint64())
			if i%5 == 0 {
				u |= 0x7f80ff80 // NaNs with payloads and infinities
			}
			if w == 2 {
				binary.LittleEndian.PutUint16(b[2*i:], uint16(u))
			} else {
				binary.LittleEndian.PutUint32(b[4*i:], u)
			}
		}
		switch k % 5 {
		case 1: // a zero tail of a third
			clear(b[2*len(b)/3/w*w:])
		case 2: // all zero
			clear(b)
		case 3: // zeros, then −0 last
			clear(b)
			b[len(b)-1] = 0x80
		case 4: // zeros in the middle, then a value, then a zero tail
			clear(b[len(b)/4/w*w : len(b)/2/w*w])
			clear(b[len(b)/2/w*w+w:])
			b[len(b)/2/w*w] = 1
		}
		return b
	}
	k := 0
	for _, t := range moe.Outputs() {
		if t.Bias() && !cfg.Bias {
			continue
		}
		r.Set(t, fill(k, cfg.Len(t)))
		k++
	}
	perm := make([]byte, 4*cfg.S())
	for i := range cfg.S() {
		binary.LittleEndian.PutUint32(perm[4*i:], uint32(i))
	}
	r.Set(moe.TensorPerm, perm)
	r.Set(moe.TensorOffsets, make([]byte, 4*cfg.E)) // int32: never elided, even when zero
	for _, t := range moe.StageTensors() {
		r.Set(t, fill(k, cfg.Len(t)))
		k++
	}
	return r
}

// sameResultBits reports the first tensor where a and b differ bitwise.
func sameResultBits(a, b *gpu.Result) error {
	for _, t := range append(moe.Outputs(), moe.StageTensors()...) {
		x, y := a.Tensor(t), b.Tensor(t)
		if len(x) != len(y) {
			return fmt.Errorf("%s: %d values, want %d", t, len(x), len(y))
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return fmt.Errorf("%s[%d] = %#08x, want %#08x", t, i, math.Float32bits(x[i]), math.Float32bits(y[i]))
			}
		}
	}
	if a.Stages == nil || b.Stages == nil || fmt.Sprint(a.Stages.Perm) != fmt.Sprint(b.Stages.Perm) || fmt.Sprint(a.Stages.Offsets) != fmt.Sprint(b.Stages.Offsets) {
		return fmt.Errorf("plans differ")
	}
	return nil
}

// TestZeroTailsSameResult: a result sent with its zero tails left out decodes to the same
// bits as the whole result — streamed in chunks and read whole, from bits (writeBits), from
// bits whose backend left part of the zero tails out (SetPrefix), and from values
// (writeTensors) — and the frame is shorter by the zero tails exactly.
func TestZeroTailsSameResult(t *testing.T) {
	for _, d := range moe.DTypes() {
		cfg := moe.Config{T: 256, H: 2048, I: 512, E: 4, K: 2, DType: d}
		bits := zeroTailResult(cfg)
		want := bits.Decode(d)
		// the same bits with each zero tail's second half already left out by the backend
		// (rawcase.Result.SetPrefix, as gpu/cuda does)
		prefixed := &rawcase.Result{}
		w := d.Bits() / 8
		for tt := moe.Tensor(0); tt < moe.TensorCase; tt++ {
			b := bits.Tensor(tt)
			if b == nil || tt == moe.TensorPerm || tt == moe.TensorOffsets {
				prefixed.Set(tt, b)
				continue
			}
			last := len(b)
			for last > 0 && b[last-1] == 0 {
				last--
			}
			cut := (last + (len(b)-last)/2 + w - 1) / w * w
			prefixed.SetPrefix(tt, b[:cut], len(b))
		}
		for _, from := range []string{"bits", "values", "prefix"} {
			var ts []wireTensor
			var whole int64
			var err error
			if from == "bits" || from == "prefix" {
				src := bits
				if from == "prefix" {
					src = prefixed
				}
				if ts, whole, err = bitsTensors(cfg, src, true); err != nil {
					t.Fatal(err)
				}
				for i := range ts {
					if ts[i].hdr.Size != 0 {
						whole += ts[i].hdr.Size - ts[i].hdr.Bytes
					}
				}
			} else {
				ts, whole = resultTensors(cfg, want)
			}
			size := elideZeroTails(ts)
			var zeros int64
			for _, tt := range ts {
				if tt.hdr.Size != 0 {
					zeros += tt.hdr.Size - tt.hdr.Bytes
				}
			}
			name := fmt.Sprintf("%s/%s", d, from)
			if zeros == 0 || size != whole-zeros {
				t.Errorf("%s: payload %d bytes of %d, %d zero bytes left out", name, size, whole, zeros)
			}
			var frame bytes.Buffer
			if from != "values" {
				var scratch []byte
				err = writeBits(&frame, 3, ts, size, &scratch)
			} else {
				err = writeTensors(&frame, 3, ts, size, 1<<16)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, streamed, err := readReplyIn(bytes.NewReader(frame.Bytes()), MaxPayloadBytes, cfg, 1<<16)
			if err != nil || streamed == nil {
				t.Fatalf("%s: streamed read: %v (result %v)", name, err, streamed != nil)
			}
			if err := sameResultBits(streamed, want); err != nil {
				t.Errorf("%s: streamed: %v", name, err)
			}
			f, err := ReadFrame(bytes.NewReader(frame.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			whole2, err := DecodeResult(f, cfg)
			if err != nil {
				t.Fatalf("%s: DecodeResult: %v", name, err)
			}
			if err := sameResultBits(whole2, want); err != nil {
				t.Errorf("%s: read whole: %v", name, err)
			}
		}
	}
}

// A worker's zero-tail header that lies is a protocol error naming the tensor, on both
// decoding paths; so is a zero tail where none may be (an int32 tensor, a request).
func TestZeroTailsHostile(t *testing.T) {
	cfg := moe.Config{T: 256, H: 2048, I: 512, E: 4, K: 2, DType: moe.BF16}
	n := int64(cfg.Len(moe.TensorY)) * 2
	for _, tc := range []struct {
		name string
		edit func(h *TensorHeader)
		want string
	}{
		{"size/short", func(h *TensorHeader) { h.Size, h.Bytes = n-2, n/2 }, "has size"},
		{"size/long", func(h *TensorHeader) { h.Size, h.Bytes = n+2, n/2 }, "has size"},
		{"bytes/over", func(h *TensorHeader) { h.Size, h.Bytes = n, n+2 }, "outside the payload"},
		{"bytes/odd", func(h *TensorHeader) { h.Size, h.Bytes = n, 3 }, "whole number"},
		{"bytes/negative", func(h *TensorHeader) { h.Size, h.Bytes = n, -2 }, "outside the payload"},
	} {
		var ys []byte
		hdr := TensorHeader{Name: "y", DType: "bf16", Shape: []int{cfg.Len(moe.TensorY)}, Offset: 0, Bytes: n}
		tc.edit(&hdr)
		if hdr.Bytes > 0 {
			ys = make([]byte, min(hdr.Bytes, n))
		}
		f := &Frame{Header: Header{Type: TypeResult, ID: 1, Tensors: []TensorHeader{hdr}}, Payload: ys}
		_, err := DecodeResult(f, cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"y"`) {
			t.Errorf("%s: DecodeResult: %v, want an error with %q naming y", tc.name, err, tc.want)
		}
	}
	m := map[string]TensorHeader{"perm": {Name: "perm", DType: WireI32, Shape: []int{4}, Bytes: 16, Size: 32}}
	if _, err := check(m, "perm", WireI32, 4, false); err == nil || !strings.Contains(err.Error(), "zero tail") {
		t.Errorf("int32 tensor with a zero tail: %v, want refused", err)
	}
}

// TestZeroTailsOfARank: the stages of an expert-parallel rank's result (gpu/sim, EP 8) have
// most of their bytes in zero tails — the rows of the sentinel tail the path leaves +0 — so
// the frame is a fraction of the whole; every stage of the sentinel tail's rules that is +0
// there is cut.
func TestZeroTailsOfARank(t *testing.T) {
	cfg := moe.Config{T: 512, H: 256, I: 128, E: 2, K: 8, EP: moe.EP{World: 8, Rank: 3}, DType: moe.BF16}
	c := casetest.Case(t, cfg, 5)
	res := casetest.SimRun(t, c, gpu.RunOptions{Stages: true, Poison: gpu.PoisonNaN})
	ts, whole := resultTensors(cfg, res)
	size := elideZeroTails(ts)
	cut := map[string]string{}
	for _, tt := range ts {
		if tt.hdr.Size != 0 {
			cut[tt.hdr.Name] = fmt.Sprintf("%d/%d", tt.hdr.Bytes, tt.hdr.Size)
		} else {
			cut[tt.hdr.Name] = fmt.Sprintf("whole %d", tt.hdr.Bytes)
		}
	}
	t.Logf("payload %d of %d bytes (%.0f %%); zero tails cut from %v", size, whole, 100*float64(size)/float64(whole), cut)
	if 2*size > whole {
		t.Errorf("payload %d of %d bytes: the sentinel tail's zeros were not left out (tails cut: %v)", size, whole, cut)
	}
	var frame bytes.Buffer
	if err := writeTensors(&frame, 1, ts, size, 1<<16); err != nil {
		t.Fatal(err)
	}
	_, got, err := readReplyIn(bytes.NewReader(frame.Bytes()), MaxPayloadBytes, cfg, 1<<16)
	if err != nil || got == nil {
		t.Fatalf("read: %v", err)
	}
	if err := sameResultBits(got, res); err != nil {
		t.Error(err)
	}
}

// A client that did not ask for zero tails gets the whole tensors of a result whose backend
// left zero tails out: the frame of the whole bits, byte for byte.
func TestZeroTailsWholeForOldClients(t *testing.T) {
	cfg := moe.Config{T: 256, H: 2048, I: 512, E: 4, K: 2, DType: moe.BF16}
	bits := zeroTailResult(cfg)
	prefixed := &rawcase.Result{}
	for tt := moe.Tensor(0); tt < moe.TensorCase; tt++ {
		b := bits.Tensor(tt)
		last := len(b)
		for last > 0 && b[last-1] == 0 {
			last--
		}
		if tt == moe.TensorPerm || tt == moe.TensorOffsets {
			last = len(b)
		}
		prefixed.SetPrefix(tt, b[:(last+1)/2*2], len(b))
	}
	frame := func(r *rawcase.Result) []byte {
		ts, size, err := bitsTensors(cfg, r, false)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		var scratch []byte
		if err := writeBits(&b, 4, ts, size, &scratch); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if !bytes.Equal(frame(prefixed), frame(bits)) {
		t.Error("the frame of a result with zero tails left out differs from the whole result's")
	}
}
