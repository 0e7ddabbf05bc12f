package worker

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/x448/float16"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// Tensor dtype names on the wire besides the float dtypes' own names (moe.DType.String).
const (
	WireI32 = "i32"
	WireI64 = "i64"
)

// payload builds a frame payload tensor by tensor.
type payload struct {
	hdr []TensorHeader
	buf []byte
}

func (p *payload) add(name, dtype string, shape []int, b []byte) {
	p.hdr = append(p.hdr, TensorHeader{Name: name, DType: dtype, Shape: shape, Offset: int64(len(p.buf)), Bytes: int64(len(b))})
	p.buf = append(p.buf, b...)
}

// addFloat adds float64 values of dtype d as their storage bits, encoded in place.
func (p *payload) addFloat(name string, d moe.DType, shape []int, v []float64) {
	off, n := len(p.buf), len(v)*(d.Bits()/8)
	p.hdr = append(p.hdr, TensorHeader{Name: name, DType: d.String(), Shape: shape, Offset: int64(off), Bytes: int64(n)})
	p.buf = slices.Grow(p.buf, n)[:off+n]
	d.PutBits(p.buf[off:], v)
}

// decodeFloat64 decodes storage bits of d to float64, exactly (moe.DType.FromBits, widened),
// over the cores.
func decodeFloat64(d moe.DType, b []byte) []float64 {
	w := d.Bits() / 8
	v := make([]float64, len(b)/w)
	par.For(par.New(0, 0), len(v), 1, v, func(v []float64, lo, hi int) {
		for i := lo; i < hi; i++ {
			if w == 2 {
				v[i] = float64(d.FromBits(uint32(binary.LittleEndian.Uint16(b[2*i:]))))
			} else {
				v[i] = float64(d.FromBits(binary.LittleEndian.Uint32(b[4*i:])))
			}
		}
	})
	return v
}

// Float32Bytes encodes float32 values that hold dtype d's values (NaN payloads included) as
// d's storage bits: bf16 keeps float32 bits 16..31, fp16 converts exactly.
func Float32Bytes(d moe.DType, v []float32) []byte {
	b := make([]byte, len(v)*(d.Bits()/8))
	encodeFloat32(d, b, v)
	return b
}

func i32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func i64Bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// EncodeRequest builds the run frame of case c with options o and the harness's faults.
func EncodeRequest(id uint64, c *moe.Case, o gpu.RunOptions, fs fault.Set) (*Frame, error) {
	e, err := encodeCase(c)
	if err != nil {
		return nil, err
	}
	return e.request(id, o, fs), nil
}

// encodedCase is the part of a run frame that depends on the case only: its header and its
// tensors. It is read, never changed, once built (a lane reuses it: reqCache).
type encodedCase struct {
	ch      CaseHeader
	tensors []TensorHeader
	payload []byte
}

// encodeCase encodes case c's header and tensors.
func encodeCase(c *moe.Case) (*encodedCase, error) {
	if c == nil {
		return nil, fmt.Errorf("worker: nil case")
	}
	d := c.DType
	ch := CaseHeader{T: c.T, H: c.H, I: c.I, E: c.E, K: c.K, EPWorld: c.EP.World, EPRank: c.EP.Rank,
		Act: c.Act.String(), Layout: c.Layout.String(), DType: d.String(), Bias: c.Bias, NonFinite: c.NonFinite}
	w, S := d.Bits()/8, c.S()
	size := (2*c.LenX()+c.LenW1()+c.LenW2()+S)*w + 4*S
	if c.Bias {
		size += (c.LenB1() + c.LenB2()) * w
	}
	if c.Global != nil {
		size += (8 + w) * S
	}
	p := payload{buf: hugemem.Bytes(size)[:0]}
	p.addFloat("x", d, []int{c.T, c.H}, c.X)
	p.addFloat("w1", d, []int{c.E, 2 * c.I, c.H}, c.W1)
	p.addFloat("w2", d, []int{c.E, c.H, c.I}, c.W2)
	if c.Bias {
		p.addFloat("b1", d, []int{c.E, 2 * c.I}, c.B1)
		p.addFloat("b2", d, []int{c.E, c.H}, c.B2)
	}
	p.addFloat("dy", d, []int{c.T, c.H}, c.DY)
	p.add("ids", WireI32, []int{c.T, c.K}, i32Bytes(c.Routing.IDs))
	p.addFloat("rw", d, []int{c.T, c.K}, c.Routing.Weights)
	if g := c.Global; g != nil {
		ch.Global = true
		ch.KeepSentinelWeights = g.Options.KeepSentinelWeights
		p.add("global_ids", WireI64, []int{c.T, c.K}, i64Bytes(g.IDs))
		p.addFloat("global_rw", d, []int{c.T, c.K}, g.Weights)
	}
	return &encodedCase{ch: ch, tensors: p.hdr, payload: p.buf}, nil
}

// sameRequest is request for a worker that holds this case from the lane's previous
// request: the header alone, marked same_case.
func (e *encodedCase) sameRequest(id uint64, o gpu.RunOptions, fs fault.Set) *Frame {
	f := e.request(id, o, fs)
	f.Header.SameCase, f.Header.Tensors, f.Payload = true, nil, nil
	return f
}

// request is the run frame of the encoded case with options o and faults fs (a frame of its
// own: its header may be changed; its tensors and payload are e's, shared).
func (e *encodedCase) request(id uint64, o gpu.RunOptions, fs fault.Set) *Frame {
	faults := []string{}
	for _, f := range fs.List() {
		faults = append(faults, f.String())
	}
	ch := e.ch
	return &Frame{Header: Header{Type: TypeRun, ID: id, Case: &ch, Tensors: e.tensors,
		Options: &OptionsHeader{Poison: o.Poison.String(), PoisonSeed: o.PoisonSeed, Faults: faults, Stages: o.Stages}},
		Payload: e.payload}
}

// tensors indexes a frame's payload by tensor name, checking every placement.
func tensors(f *Frame) (map[string]TensorHeader, error) {
	m := make(map[string]TensorHeader, len(f.Header.Tensors))
	for _, t := range f.Header.Tensors {
		// Offset+Bytes may overflow int64: compare Bytes with the room left after Offset.
		if t.Offset < 0 || t.Bytes < 0 || t.Offset > int64(len(f.Payload)) || t.Bytes > int64(len(f.Payload))-t.Offset {
			return nil, fmt.Errorf("worker: tensor %q at [%d, +%d) outside the payload of %d bytes", t.Name, t.Offset, t.Bytes, len(f.Payload))
		}
		if _, dup := m[t.Name]; dup {
			return nil, fmt.Errorf("worker: tensor %q given twice", t.Name)
		}
		m[t.Name] = t
	}
	return m, nil
}

// get returns the bytes of tensor name, checking dtype and element count.
func get(f *Frame, m map[string]TensorHeader, name, dtype string, n int) ([]byte, error) {
	t, err := check(m, name, dtype, n, false)
	if err != nil {
		return nil, err
	}
	return f.Payload[t.Offset : t.Offset+t.Bytes], nil
}

// getFloat returns the n values of a result's float tensor name of dtype d (check with tail: it
// may have a zero tail).
func getFloat(f *Frame, m map[string]TensorHeader, name string, d moe.DType, n int) ([]float32, error) {
	t, err := check(m, name, d.String(), n, true)
	if err != nil {
		return nil, err
	}
	return floatValues(d, f.Payload[t.Offset:t.Offset+t.Bytes], n), nil
}

// check returns the header of tensor name, checking its dtype and element count. With tail
// (a result's float tensor) the header may give a zero tail (zerotail.go): its Size is then
// the n elements' bytes, and its payload Bytes a whole number of elements within it.
func check(m map[string]TensorHeader, name, dtype string, n int, tail bool) (TensorHeader, error) {
	t, ok := m[name]
	if !ok {
		return t, fmt.Errorf("worker: tensor %q missing", name)
	}
	if t.DType != dtype {
		return t, fmt.Errorf("worker: tensor %q has dtype %s, want %s", name, t.DType, dtype)
	}
	w := int64(4)
	switch dtype {
	case "bf16", "fp16":
		w = 2
	case WireI64:
		w = 8
	}
	switch {
	case t.Size != 0 && !tail:
		return t, fmt.Errorf("worker: tensor %q has a zero tail (size %d), which only a result's float tensor may have", name, t.Size)
	case t.Size != 0 && t.Size != int64(n)*w:
		return t, fmt.Errorf("worker: tensor %q has size %d bytes, want %d (%d × %s)", name, t.Size, int64(n)*w, n, dtype)
	case t.Size != 0 && (t.Bytes < 0 || t.Bytes > t.Size || t.Bytes%w != 0):
		return t, fmt.Errorf("worker: tensor %q sends %d of its %d bytes, not a whole number of %s elements within it", name, t.Bytes, t.Size, dtype)
	case t.Size == 0 && t.Bytes != int64(n)*w:
		return t, fmt.Errorf("worker: tensor %q has %d bytes, want %d (%d × %s)", name, t.Bytes, int64(n)*w, n, dtype)
	}
	if e, ok := shapeElems(t.Shape); !ok || e != int64(n) {
		return t, fmt.Errorf("worker: tensor %q has shape %v, want %d elements", name, t.Shape, n)
	}
	return t, nil
}

// shapeElems returns the element count of shape; ok is false for a negative dimension or a
// product beyond MaxPayloadBytes (no tensor of a frame can hold more elements than that).
func shapeElems(shape []int) (n int64, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > MaxPayloadBytes/int64(d) {
			return 0, false
		}
		n *= int64(d)
	}
	return n, true
}

// DecodeRequest decodes a run frame into the case, its options and its faults. The case is
// validated against moe's default limits.
func DecodeRequest(f *Frame) (_ *moe.Case, o gpu.RunOptions, fs fault.Set, _ error) {
	rc, err := requestBits(f)
	if err != nil {
		return nil, o, fs, err
	}
	c := decodeCase(rc)
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, o, fs, err
	}
	if o, fs, err = requestOptions(f); err != nil {
		return nil, o, fs, err
	}
	return c, o, fs, nil
}

// decodeBits is decodeRequest for a backend that runs cases as their bits (rawcase.Runner):
// the case's tensors stay the payload's bytes (the frame must not change while the case is
// used), validated on their bits with the checks and errors of the decoded case's
// validation.
func decodeBits(f *Frame) (_ rawcase.Checked, o gpu.RunOptions, fs fault.Set, _ error) {
	rc, err := requestBits(f)
	if err != nil {
		return rawcase.Checked{}, o, fs, err
	}
	k, err := rawcase.Validate(rc, moe.Limits{})
	if err != nil {
		return rawcase.Checked{}, o, fs, err
	}
	if o, fs, err = requestOptions(f); err != nil {
		return rawcase.Checked{}, o, fs, err
	}
	return k, o, fs, nil
}

// requestBits reads a run frame's case: its config (checked against moe's default limits)
// and its tensors, each checked for its name, dtype, size and shape, as slices of the
// payload. The values are not checked.
func requestBits(f *Frame) (*rawcase.Case, error) {
	h := f.Header
	if h.Type != TypeRun || h.Case == nil || h.Options == nil {
		return nil, fmt.Errorf("worker: not a run request (type %q)", h.Type)
	}
	if h.SameCase {
		return nil, fmt.Errorf("worker: a same_case request has no case of its own (it reuses the lane's previous one)")
	}
	ch := h.Case
	d, err := moe.ParseDType(ch.DType)
	if err != nil {
		return nil, err
	}
	act, err := moe.ParseActivation(ch.Act)
	if err != nil {
		return nil, err
	}
	lay, err := moe.ParseLayout(ch.Layout)
	if err != nil {
		return nil, err
	}
	cfg := moe.Config{T: ch.T, H: ch.H, I: ch.I, E: ch.E, K: ch.K, EP: moe.EP{World: ch.EPWorld, Rank: ch.EPRank},
		Act: act, Layout: lay, DType: d, Bias: ch.Bias}
	if err := cfg.Validate(moe.Limits{}); err != nil {
		return nil, err
	}
	m, err := tensors(f)
	if err != nil {
		return nil, err
	}
	c := &rawcase.Case{Config: cfg, NonFinite: ch.NonFinite}
	fl := func(name string, n int) ([]byte, error) { return get(f, m, name, d.String(), n) }
	if c.X, err = fl("x", cfg.LenX()); err != nil {
		return nil, err
	}
	if c.W1, err = fl("w1", cfg.LenW1()); err != nil {
		return nil, err
	}
	if c.W2, err = fl("w2", cfg.LenW2()); err != nil {
		return nil, err
	}
	if cfg.Bias {
		if c.B1, err = fl("b1", cfg.LenB1()); err != nil {
			return nil, err
		}
		if c.B2, err = fl("b2", cfg.LenB2()); err != nil {
			return nil, err
		}
	}
	if c.DY, err = fl("dy", cfg.LenX()); err != nil {
		return nil, err
	}
	S := cfg.S()
	if c.IDs, err = get(f, m, "ids", WireI32, S); err != nil {
		return nil, err
	}
	if c.RW, err = fl("rw", S); err != nil {
		return nil, err
	}
	if ch.Global {
		g := &rawcase.Global{Options: moe.GlobalOptions{KeepSentinelWeights: ch.KeepSentinelWeights}}
		if g.IDs, err = get(f, m, "global_ids", WireI64, S); err != nil {
			return nil, err
		}
		if g.RW, err = fl("global_rw", S); err != nil {
			return nil, err
		}
		c.Global = g
	}
	return c, nil
}

// decodeCase decodes a case's bits to a moe.Case, exactly (the float tensors over the cores).
func decodeCase(rc *rawcase.Case) *moe.Case { return rc.DecodeWith(decodeFloat64) }

// requestOptions reads a run frame's options and faults.
func requestOptions(f *Frame) (o gpu.RunOptions, fs fault.Set, err error) {
	h := f.Header
	if o.Poison, err = gpu.ParsePoison(h.Options.Poison); err != nil {
		return o, fs, err
	}
	o.PoisonSeed = h.Options.PoisonSeed
	for _, name := range h.Options.Faults {
		fa, err := fault.Parse(name)
		if err != nil {
			return o, fs, err
		}
		fs |= fault.Of(fa)
	}
	o.Stages = h.Options.Stages
	return o, fs, nil
}

// wireName is tensor t's name in result frames: "y", "dx", "dw1", "db1", "dw2", "db2",
// "drw" for the outputs, "stage.<name>" for stages and the plan ("stage.xs", "stage.perm").
func wireName(t moe.Tensor) string {
	if t.IsStage() || t == moe.TensorPerm || t == moe.TensorOffsets {
		return "stage." + t.String()
	}
	return strings.ToLower(t.String())
}

// DecodeResult decodes a result frame for a case of config cfg, checking every tensor's
// length against the config.
func DecodeResult(f *Frame, cfg moe.Config) (*gpu.Result, error) {
	if f.Header.Type != TypeResult {
		return nil, fmt.Errorf("worker: not a result (type %q)", f.Header.Type)
	}
	m, err := tensors(f)
	if err != nil {
		return nil, err
	}
	d := cfg.DType
	r := &gpu.Result{}
	for _, t := range moe.Outputs() {
		if t.Bias() && !cfg.Bias {
			continue
		}
		v, err := getFloat(f, m, wireName(t), d, cfg.Len(t))
		if err != nil {
			return nil, err
		}
		r.SetTensor(t, v)
	}
	if _, ok := m[wireName(moe.TensorPerm)]; ok {
		S := cfg.S()
		s := &gpu.Stages{}
		pb, err := get(f, m, wireName(moe.TensorPerm), WireI32, S)
		if err != nil {
			return nil, err
		}
		ob, err := get(f, m, wireName(moe.TensorOffsets), WireI32, cfg.E)
		if err != nil {
			return nil, err
		}
		s.Perm, s.Offsets = make([]int32, S), make([]int32, cfg.E)
		for i := range s.Perm {
			s.Perm[i] = int32(binary.LittleEndian.Uint32(pb[4*i:]))
		}
		for i := range s.Offsets {
			s.Offsets[i] = int32(binary.LittleEndian.Uint32(ob[4*i:]))
		}
		r.Stages = s
		for _, t := range moe.StageTensors() {
			if _, ok := m[wireName(t)]; !ok {
				continue
			}
			v, err := getFloat(f, m, wireName(t), d, cfg.Len(t))
			if err != nil {
				return nil, err
			}
			r.SetTensor(t, v)
		}
	}
	return r, nil
}

// f32ToF16Bits converts a float32 holding an fp16 value to its fp16 bits (round to nearest
// even otherwise), keeping NaN payloads (mantissa bits 13..22) as moe.DType.FromBits reads them.
func f32ToF16Bits(x float32) uint16 { return float16.Fromfloat32(x).Bits() }
