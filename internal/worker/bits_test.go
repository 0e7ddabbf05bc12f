package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/poison"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// bitsDevice is a fake device that holds storage bits, as gpu/cuda's does: its result is the
// case's bits (Y = X, DX = DY, DW1 = W1, DW2 = W2, DB1 = B1, DB2 = B2, DRW = the routing
// weights) with the signature NaNs of d_rw and dX in DRW[0] and DX[0], and with stages the
// identity perm, the offsets 0..E-1 and every stage tensor filled from X's bits.
func bitsDevice(k rawcase.Checked, o gpu.RunOptions) *rawcase.Result {
	c := k.Case()
	d := c.Config.DType
	w := d.Bits() / 8
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	put := func(b []byte, v float32) {
		u := math.Float32bits(d.RoundFloat32(v))
		switch d {
		case moe.BF16:
			binary.LittleEndian.PutUint16(b, uint16(u>>16))
		case moe.FP16:
			binary.LittleEndian.PutUint16(b, f32ToF16Bits(d.RoundFloat32(v)))
		default:
			binary.LittleEndian.PutUint32(b, u)
		}
	}
	r := &rawcase.Result{}
	r.Set(moe.TensorY, cp(c.X))
	r.Set(moe.TensorDX, cp(c.DY))
	r.Set(moe.TensorDW1, cp(c.W1))
	r.Set(moe.TensorDW2, cp(c.W2))
	r.Set(moe.TensorDB1, cp(c.B1))
	r.Set(moe.TensorDB2, cp(c.B2))
	r.Set(moe.TensorDRW, cp(c.RW))
	put(r.Tensor(moe.TensorDRW), poison.NaN(gpu.BufDRW))
	put(r.Tensor(moe.TensorDX), poison.NaN(gpu.BufDX))
	if o.Stages {
		cfg := c.Config
		perm := make([]byte, 4*cfg.S())
		for i := range cfg.S() {
			binary.LittleEndian.PutUint32(perm[4*i:], uint32(i))
		}
		offs := make([]byte, 4*cfg.E)
		for i := range cfg.E {
			binary.LittleEndian.PutUint32(offs[4*i:], uint32(i))
		}
		r.Set(moe.TensorPerm, perm)
		r.Set(moe.TensorOffsets, offs)
		for _, t := range moe.StageTensors() {
			b := make([]byte, cfg.Len(t)*w)
			for i := 0; i < len(b); i += len(c.X) {
				copy(b[i:], c.X)
			}
			r.Set(t, b)
		}
	}
	return r
}

// bitsBackend serves bitsDevice through rawcase.Runner; its Run and RunFaults fail.
type bitsBackend struct{ fakeBackend }

func (bitsBackend) Run(context.Context, *moe.Case, gpu.RunOptions) (*gpu.Result, error) {
	return nil, fmt.Errorf("Run called on a bits backend")
}

func (bitsBackend) RunFaults(context.Context, *moe.Case, gpu.RunOptions, fault.Set) (*gpu.Result, error) {
	return nil, fmt.Errorf("RunFaults called on a bits backend")
}

func (bitsBackend) RunBits(_ context.Context, k rawcase.Checked, o gpu.RunOptions, _ fault.Set) (*rawcase.Result, error) {
	return bitsDevice(k, o), nil
}

// floatTwin is the same device behind gpu.Backend's float interface, as gpu/cuda's Run is:
// it encodes the case to bits and decodes the device's result.
type floatTwin struct{ fakeBackend }

func (b floatTwin) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

func (floatTwin) RunFaults(_ context.Context, c *moe.Case, o gpu.RunOptions, _ fault.Set) (*gpu.Result, error) {
	f, err := EncodeRequest(1, c, o, 0)
	if err != nil {
		return nil, err
	}
	rc, err := requestBits(f)
	if err != nil {
		return nil, err
	}
	k, err := rawcase.Validate(rc, moe.Limits{})
	if err != nil {
		return nil, err
	}
	return bitsDevice(k, o).Decode(c.DType), nil
}

// serveAll serves the frames with b and returns every reply frame's bytes after the hello.
func serveAll(t *testing.T, b gpu.Backend, frames []*Frame) [][]byte {
	t.Helper()
	var in, out bytes.Buffer
	for _, f := range append(frames, &Frame{Header: Header{Type: TypeBye}}) { // bye: no hang-up mid-case
		if err := WriteFrame(&in, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := Serve(&in, &out, b, ServeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(&out); err != nil {
		t.Fatal(err)
	}
	var replies [][]byte
	for out.Len() > 0 {
		start := out.Bytes()
		n := out.Len()
		if _, err := ReadFrame(&out); err != nil {
			t.Fatal(err)
		}
		replies = append(replies, start[:n-out.Len()])
	}
	return replies
}

// damage is a way to make a run request hostile (or leave it valid).
var damages = []struct {
	name string
	f    func(f *Frame)
}{
	{"valid", func(*Frame) {}},
	{"nan-x", func(f *Frame) { plantWire(f, "x", 0) }},
	{"inf-w1-last", func(f *Frame) { plantWire(f, "w1", -1) }},
	{"nan-dy-nonfinite", func(f *Frame) { f.Header.Case.NonFinite = true; plantWire(f, "dy", 1) }},
	{"nan-rw", func(f *Frame) { plantWire(f, "rw", 0) }},
	{"nan-global-rw", func(f *Frame) { plantWire(f, "global_rw", 0) }},
	{"id-range", func(f *Frame) { setWire(f, "ids", 1, 4, uint64(f.Header.Case.E)+1) }},
	{"id-negative", func(f *Frame) { setWire(f, "ids", 0, 4, math.MaxUint32) }},
	{"global-id-range", func(f *Frame) { setWire(f, "global_ids", 0, 8, 1<<40) }},
	{"global-mismatch", func(f *Frame) { setWire(f, "ids", 0, 4, uint64(f.Header.Case.E)) }},
	{"wrong-dtype", func(f *Frame) { f.Header.Tensors[1].DType = "fp32" }},
	{"missing-dy", func(f *Frame) { f.Header.Tensors[len(f.Header.Tensors)-3].Name = "dz" }},
	{"bad-config", func(f *Frame) { f.Header.Case.K = 0 }},
	{"bad-fault", func(f *Frame) { f.Header.Options.Faults = []string{"no-such-fault"} }},
	{"bad-poison", func(f *Frame) { f.Header.Options.Poison = "purple" }},
	{"bad-poison-and-nan", func(f *Frame) { f.Header.Options.Poison = "purple"; plantWire(f, "x", 0) }},
}

// tensorAt returns the payload bytes of tensor name (nil when absent).
func tensorAt(f *Frame, name string) ([]byte, string) {
	for _, t := range f.Header.Tensors {
		if t.Name == name {
			return f.Payload[t.Offset : t.Offset+t.Bytes], t.DType
		}
	}
	return nil, ""
}

// plantWire writes a NaN (i ≥ 0: at element i; −1: +Inf at the last element) into tensor name.
func plantWire(f *Frame, name string, i int) {
	b, dt := tensorAt(f, name)
	if b == nil {
		return
	}
	w := 2
	if dt == "fp32" {
		w = 4
	}
	nan := map[string]uint64{"bf16": 0x7fc1, "fp16": 0x7e01, "fp32": 0x7fc00001}[dt]
	inf := map[string]uint64{"bf16": 0x7f80, "fp16": 0x7c00, "fp32": 0x7f800000}[dt]
	v := nan
	if i < 0 {
		i, v = len(b)/w-1, inf|1<<(8*w-1)
	}
	setWire(f, name, i, w, v)
}

func setWire(f *Frame, name string, i, w int, v uint64) {
	b, _ := tensorAt(f, name)
	if b == nil {
		return
	}
	switch w {
	case 2:
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	default:
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
}

// Serving a bits backend answers every request, valid or hostile, with the same bytes as
// serving the same device behind the float interface: the same results, and the same
// bad_request errors for the same problems (validation on bits is the decoded case's).
func TestBitsServeMatchesFloat(t *testing.T) {
	var frames []*Frame
	var names []string
	id := uint64(0)
	for _, d := range moe.DTypes() {
		for _, bias := range []bool{false, true} {
			for _, global := range []bool{false, true} {
				for _, stages := range []bool{false, true} {
					for _, dm := range damages {
						c := testCase(t, d, bias, global)
						id++
						f, err := EncodeRequest(id, c, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: stages}, 0)
						if err != nil {
							t.Fatal(err)
						}
						dm.f(f)
						frames = append(frames, f)
						names = append(names, fmt.Sprintf("%s/%s/bias=%v/global=%v/stages=%v", dm.name, d, bias, global, stages))
					}
				}
			}
		}
	}
	got := serveAll(t, bitsBackend{}, frames)
	want := serveAll(t, floatTwin{}, frames)
	if len(got) != len(frames) || len(want) != len(frames) {
		t.Fatalf("%d and %d replies to %d requests", len(got), len(want), len(frames))
	}
	results := 0
	for i := range frames {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("%s: reply differs:\n bits  %.300q\n float %.300q", names[i], got[i], want[i])
		}
		if f, err := ReadFrame(bytes.NewReader(got[i])); err == nil && f.Header.Type == TypeResult {
			results++
		}
	}
	if results == 0 || results == len(frames) {
		t.Errorf("%d of %d requests answered with a result: the damage does not exercise both sides", results, len(frames))
	}
}

// A result frame written from bits is byte for byte the frame encoded from the decoded
// result, for every bf16 and fp16 storage pattern (NaN payloads, signalling NaNs,
// subnormals, ±0) and fp32 NaN payloads, small (written at once) and large (header first,
// then each tensor), with and without stages.
func TestBitsFrames(t *testing.T) {
	for _, d := range moe.DTypes() {
		for _, n := range []int{1 << 16, 3 << 18} {
			for _, stages := range []bool{false, true} {
				w := d.Bits() / 8
				all := make([]byte, n*w)
				rng := moe.NewRand(uint64(n))
				for i := range n {
					if w == 2 {
						binary.LittleEndian.PutUint16(all[2*i:], uint16(i))
					} else {
						u := uint32(rng.Uint64())
						if i%3 == 0 {
							u |= 0x7f800000 // NaNs with payloads and infinities
						}
						binary.LittleEndian.PutUint32(all[4*i:], u)
					}
				}
				r := &rawcase.Result{}
				part := func(k int) []byte { return all[k*len(all)/8 : (k+1)*len(all)/8 : (k+1)*len(all)/8] }
				for k, t := range moe.Outputs() {
					r.Set(t, part(k))
				}
				if stages {
					r.Set(moe.TensorPerm, []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
					r.Set(moe.TensorOffsets, nil)
					r.Set(moe.TensorH1, part(7))
				}
				cfg := moe.Config{DType: d}
				ts, size, err := bitsTensors(cfg, r, false)
				if err != nil {
					t.Fatal(err)
				}
				var got, want, stream bytes.Buffer
				var scratch []byte
				if err := writeBits(&got, 9, ts, size, &scratch); err != nil {
					t.Fatal(err)
				}
				dec := r.Decode(d)
				if err := WriteFrame(&want, EncodeResult(9, cfg, dec)); err != nil {
					t.Fatal(err)
				}
				if err := writeResult(&stream, 9, cfg, dec, 1<<16); err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%s/n=%d/stages=%v", d, n, stages)
				if !bytes.Equal(got.Bytes(), want.Bytes()) || !bytes.Equal(got.Bytes(), stream.Bytes()) {
					t.Errorf("%s: the frame from bits differs from the encoded one (%d, %d, %d bytes)", name, got.Len(), want.Len(), stream.Len())
				}
				if inline := size <= inlineBits; inline != (n*w <= inlineBits) {
					t.Errorf("%s: inline %v for %d bytes", name, inline, size)
				}
			}
		}
	}
}

// A backend's result tensor of a part element is an internal error, not a frame.
func TestBitsTensorsRefusesPartElements(t *testing.T) {
	r := &rawcase.Result{}
	r.Set(moe.TensorY, make([]byte, 3))
	if _, _, err := bitsTensors(moe.Config{DType: moe.BF16}, r, false); err == nil {
		t.Fatal("a 3-byte bf16 tensor was accepted")
	}
}
