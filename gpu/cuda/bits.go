package cuda

// No build tag: pure Go, tested in the default build (bits_test.go): a run's inputs as the
// bytes uploaded (from a moe.Case's values, or a rawcase.Case's bits as they came) and its
// downloads as a result (decoded to a gpu.Result, or kept as bits in a rawcase.Result).

import (
	"encoding/binary"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// input is one input tensor of a case: its buffer and its bytes, written by put.
type input struct {
	name string
	n    int64
	put  func(dst []byte)
}

// caseInputs lists the inputs of case c in upload order, its values encoded to the dtype's
// storage bits (encodeTo); meta last.
func caseInputs(c *moe.Case) []input {
	d, es := c.DType, int64(c.DType.Bits()/8)
	var in []input
	if c.Global != nil {
		in = append(in, input{"gids", int64(8 * len(c.Global.IDs)), func(gb []byte) {
			for i, g := range c.Global.IDs {
				binary.LittleEndian.PutUint64(gb[8*i:], uint64(g))
			}
		}})
	} else {
		in = append(in, input{"ids", int64(4 * len(c.Routing.IDs)), func(ib []byte) {
			for i, x := range c.Routing.IDs {
				binary.LittleEndian.PutUint32(ib[4*i:], uint32(x))
			}
		}})
	}
	ws := c.Routing.Weights
	if c.Global != nil {
		ws = c.Global.Weights
	}
	for _, t := range []struct {
		name string
		v    []float64
	}{{"x", c.X}, {"w1", c.W1}, {"w2", c.W2}, {"dy", c.DY}, {"rw", ws}, {"b1", c.B1}, {"b2", c.B2}} {
		if t.v == nil {
			continue
		}
		v := t.v
		in = append(in, input{t.name, int64(len(v)) * es, func(out []byte) { encodeTo(out, d, v) }})
	}
	return append(in, metaInput())
}

// bitsInputs is caseInputs of a case given as its bits: each input is copied as it came
// (the bits caseInputs writes for the case those bits decode to, NaN payloads as sent).
func bitsInputs(c *rawcase.Case) []input {
	var in []input
	cp := func(name string, b []byte) {
		in = append(in, input{name, int64(len(b)), func(out []byte) { copy(out, b) }})
	}
	if g := c.Global; g != nil {
		cp("gids", g.IDs)
	} else {
		cp("ids", c.IDs)
	}
	rw := c.RW
	if c.Global != nil {
		rw = c.Global.RW
	}
	for _, t := range []struct {
		name string
		b    []byte
	}{{"x", c.X}, {"w1", c.W1}, {"w2", c.W2}, {"dy", c.DY}, {"rw", rw}, {"b1", c.B1}, {"b2", c.B2}} {
		if t.b != nil {
			cp(t.name, t.b)
		}
	}
	return append(in, metaInput())
}

// metaInput is the routing kernels' meta block: 0, 0, MaxInt32, 0.
func metaInput() input {
	return input{"meta", 16, func(mb []byte) {
		for i, x := range []int32{0, 0, math.MaxInt32, 0} {
			binary.LittleEndian.PutUint32(mb[4*i:], uint32(x))
		}
	}}
}

// downloadNames maps the buffers a result downloads to the tensors they hold (d_rw, in
// sorted-row order, becomes DRW in slot order through inv; perm and offs are the plan).
var downloadNames = []struct {
	buf string
	t   moe.Tensor
}{
	{"y", moe.TensorY}, {"dX", moe.TensorDX}, {"dW1", moe.TensorDW1}, {"dW2", moe.TensorDW2}, {"dB1", moe.TensorDB1},
	{"dB2", moe.TensorDB2}, {"perm", moe.TensorPerm}, {"offs", moe.TensorOffsets},
	{"xs", moe.TensorXs}, {"h1", moe.TensorH1}, {"act", moe.TensorAct}, {"h2", moe.TensorH2}, {"o", moe.TensorO},
	{"d_o", moe.TensorDO}, {"d_h2", moe.TensorDH2}, {"d_act", moe.TensorDAct}, {"d_h1", moe.TensorDH1}, {"d_xs", moe.TensorDXs},
}

// resultOf decodes a run's downloads (buffer name → bytes; "d_rw" and "inv" always, the plan
// and the stages with stages) to a gpu.Result for s slots of dtype d.
func resultOf(d moe.DType, s int, stages bool, got map[string][]byte) *gpu.Result {
	f := func(name string) []float32 {
		if h, ok := got[name]; ok {
			return decode(d, h)
		}
		return nil
	}
	res := &gpu.Result{Y: f("y"), DX: f("dX"), DW1: f("dW1"), DW2: f("dW2"), DB1: f("dB1"), DB2: f("dB2")}
	drw, inv := f("d_rw"), le32s(got["inv"])
	res.DRW = make([]float32, s)
	for i := range res.DRW {
		res.DRW[i] = drw[inv[i]]
	}
	if !stages {
		return res
	}
	res.Stages = &gpu.Stages{Perm: le32s(got["perm"]), Offsets: le32s(got["offs"]),
		Xs: f("xs"), H1: f("h1"), Act: f("act"), H2: f("h2"), O: f("o"), DO: f("d_o"),
		DH2: f("d_h2"), DAct: f("d_act"), DH1: f("d_h1"), DXs: f("d_xs")}
	return res
}

// resultBits is resultOf keeping the bits: the downloads' bytes themselves (not copied: they
// stay the lane's download staging) and DRW gathered into slot order (a new slice).
func resultBits(d moe.DType, s int, stages bool, got map[string][]byte) *rawcase.Result {
	r := &rawcase.Result{}
	for _, x := range downloadNames {
		if h, ok := got[x.buf]; ok && (stages || !x.t.IsStage() && x.t != moe.TensorPerm && x.t != moe.TensorOffsets) {
			r.Set(x.t, h)
		}
	}
	if stages { // the plan is present with stages (resultOf's Stages), empty if not downloaded
		for _, t := range []moe.Tensor{moe.TensorPerm, moe.TensorOffsets} {
			if r.Tensor(t) == nil {
				r.Set(t, []byte{})
			}
		}
	}
	es := d.Bits() / 8
	drw, inv := got["d_rw"], got["inv"]
	out := make([]byte, s*es)
	for i := range s {
		j := int(int32(binary.LittleEndian.Uint32(inv[4*i:])))
		copy(out[i*es:(i+1)*es], drw[j*es:(j+1)*es])
	}
	r.Set(moe.TensorDRW, out)
	return r
}

// le32s decodes little-endian int32s.
func le32s(b []byte) []int32 {
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
