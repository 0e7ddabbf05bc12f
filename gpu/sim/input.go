package sim

import (
	"bytes"
	"errors"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/moecheck/moecheck/moe"
)

// errInput is returned by the fast checks when a value or length is not what c.Validate
// accepts; Run then asks c.Validate for the error that names the problem.
var errInput = errors.New("sim: case does not validate")

// check accepts exactly the cases c.Validate(lim) accepts; it checks values while
// load converts them (the per-element checks of c.Validate cost more than a small case's
// whole path). Any case it does not accept goes to c.Validate for the message.
func check(c *moe.Case, lim moe.Limits) error {
	if c == nil {
		return c.Validate(lim)
	}
	if err := c.Config.Validate(lim); err != nil {
		return err
	}
	if err := c.Routing.Validate(c.Config); err != nil {
		return err
	}
	if g := c.Global; g != nil { // c.Validate's global map check (its message where it fails)
		r, err := moe.FromGlobal(c.Config, g.IDs, g.Weights, g.Options)
		if err != nil {
			return c.Validate(lim)
		}
		for s := range r.IDs {
			if r.IDs[s] != c.Routing.IDs[s] || r.Weights[s] != c.Routing.Weights[s] {
				return c.Validate(lim)
			}
		}
	}
	if len(c.X) != c.LenX() || len(c.DY) != c.LenX() || len(c.W1) != c.LenW1() || len(c.W2) != c.LenW2() {
		return c.Validate(lim)
	}
	if c.Bias && (len(c.B1) != c.LenB1() || len(c.B2) != c.LenB2()) || !c.Bias && (c.B1 != nil || c.B2 != nil) {
		return c.Validate(lim)
	}
	return nil
}

// convert stores src as float32 in dst (same length), reporting errInput for a value that is
// not a value of d or is non-finite without nonFinite (c.Validate's value rules).
func convert(dst []float32, src []float64, d moe.DType, nonFinite bool) error {
	bad := false
	for i, x := range src {
		f := float32(x)
		dst[i] = f
		switch {
		case x != x: // NaN: a value of every dtype
			bad = bad || !nonFinite
		case math.IsInf(x, 0):
			bad = bad || !nonFinite
		case float64(f) != x: // float32 holds every bf16, fp16 and fp32 value exactly
			bad = true
		case d == moe.BF16:
			bad = bad || math.Float32bits(f)&0xffff != 0 // bf16 is float32's top 16 bits
		case d == moe.FP16:
			bad = bad || d.RoundFloat32(f) != f // identity exactly on fp16 values (±Inf above)
		}
	}
	if bad {
		return errInput
	}
	return nil
}

// convert is convert split over st.par goroutines.
func (st *state) convert(dst []float32, src []float64, d moe.DType, nonFinite bool) error {
	if st.par.Workers <= 1 || len(src) < 2*st.par.MinWork {
		return convert(dst, src, d, nonFinite)
	}
	var bad atomic.Bool
	parFor(st.par, len(src), 2, &convertArgs{dst, src, d, nonFinite, &bad}, (*convertArgs).run)
	if bad.Load() {
		return errInput
	}
	return nil
}

// convertArgs are the operands of a split convert.
type convertArgs struct {
	dst       []float32
	src       []float64
	d         moe.DType
	nonFinite bool
	bad       *atomic.Bool
}

func (a *convertArgs) run(lo, hi int) {
	if convert(a.dst[lo:hi], a.src[lo:hi], a.d, a.nonFinite) != nil {
		a.bad.Store(true)
	}
}

// load converts the case's tensors into the state's float32 inputs: x, dy, both layouts of
// W1 and W2 (standard for the dgrads, transposed for the forward GEMMs), biases. A tensor
// whose values are bitwise the ones the state already holds converted (in.same: the runs
// of one case under each property and poison policy, a derived case's unchanged weights)
// is not converted again.
func (st *state) load(c *moe.Case) error {
	d, nf := c.DType, c.NonFinite
	E, H, I2, I := c.E, c.H, 2*c.I, c.I
	in := &st.in
	in.begin(c)
	conv := func(dst []float32, src []float64, keep *kept) error {
		if in.same(keep, src) {
			return nil
		}
		if err := st.convert(dst, src, d, nf); err != nil {
			in.drop()
			return err
		}
		in.keep(keep, src)
		return nil
	}
	st.x = grow(st.x, c.LenX())
	st.dy = grow(st.dy, c.LenX())
	if err := conv(st.x, c.X, &in.x); err != nil {
		return err
	}
	if err := conv(st.dy, c.DY, &in.dy); err != nil {
		return err
	}
	st.w1 = grow(st.w1, c.LenW1())
	st.w1t = grow(st.w1t, c.LenW1())
	st.w2 = grow(st.w2, c.LenW2())
	st.w2t = grow(st.w2t, c.LenW2())
	// W1: standard E×2I×H, transposed E×H×2I. Each is converted straight into the buffer of
	// its own layout, then transposed into the other.
	if !in.same(&in.w1, c.W1) {
		st.wgen1++ // (before any write: a failed conversion leaves partial weights)
		if c.Layout == moe.Transposed {
			if err := conv(st.w1t, c.W1, &in.w1); err != nil {
				return err
			}
			st.transpose(st.w1, st.w1t, E, H, I2)
		} else {
			if err := conv(st.w1, c.W1, &in.w1); err != nil {
				return err
			}
			st.transpose(st.w1t, st.w1, E, I2, H)
		}
	}
	// W2: standard E×H×I, transposed E×I×H.
	if !in.same(&in.w2, c.W2) {
		st.wgen2++
		if c.Layout == moe.Transposed {
			if err := conv(st.w2t, c.W2, &in.w2); err != nil {
				return err
			}
			st.transpose(st.w2, st.w2t, E, I, H)
		} else {
			if err := conv(st.w2, c.W2, &in.w2); err != nil {
				return err
			}
			st.transpose(st.w2t, st.w2, E, H, I)
		}
	}
	st.b1, st.b2 = st.b1[:0], st.b2[:0]
	if c.Bias {
		st.b1 = grow(st.b1, c.LenB1())
		st.b2 = grow(st.b2, c.LenB2())
		if err := conv(st.b1, c.B1, &in.b1); err != nil {
			return err
		}
		if err := conv(st.b2, c.B2, &in.b2); err != nil {
			return err
		}
	}
	return nil
}

// maxKeptInputs is the most case elements (moe.Config.Elements) whose inputs loaded keeps
// a copy of: above it every Run converts (a real layer's weights would double in memory).
const maxKeptInputs = 1 << 21

// loaded is what the state's float32 inputs were converted from: per input tensor a copy
// of its values where known, and what the conversion depends on besides the values (dtype,
// non-finite rule, layout and shape, which fix where each value goes in both layouts).
type loaded struct {
	key                   loadKey
	x, dy, w1, w2, b1, b2 kept
}

// kept is one input tensor's record: v, a copy of the values the state holds converted
// (empty: unknown), and src, the address of the last source converted. The copy is made
// only when the same memory is converted a second time in a row (a case run again: its
// later runs then compare instead of converting); a source seen once (a rank case's
// weights, a derived case) costs no copy.
type kept struct {
	v   []float64
	src uintptr
}

type loadKey struct {
	d         moe.DType
	nonFinite bool
	layout    moe.Layout
	e, h, i   int
}

// begin starts a load of c: the copies stay only where c converts the same way, and none
// are kept for a case above maxKeptInputs.
func (in *loaded) begin(c *moe.Case) {
	k := loadKey{c.DType, c.NonFinite, c.Layout, c.E, c.H, c.I}
	if c.Config.Elements() > maxKeptInputs {
		*in = loaded{} // releases the copies too
		return
	}
	if k != in.key {
		in.drop()
		in.key = k
	}
}

// drop forgets every copy (after a failed conversion the state's inputs are partial).
func (in *loaded) drop() {
	in.key = loadKey{}
	for _, k := range []*kept{&in.x, &in.dy, &in.w1, &in.w2, &in.b1, &in.b2} {
		k.v, k.src = k.v[:0], 0
	}
}

// same reports whether src is bitwise k's copy (a non-empty one: with the key checked by
// begin, the state holds src converted).
func (in *loaded) same(k *kept, src []float64) bool {
	if in.key == (loadKey{}) || len(k.v) == 0 || len(k.v) != len(src) {
		return false
	}
	return bytes.Equal(f64bytes(k.v), f64bytes(src))
}

// keep records src, just converted, in k: its copy where src's memory was the last one
// converted too, else only its address (any previous copy no longer describes the state).
// The address only decides when to copy; whether a later source is the same is decided by
// comparing values (same).
func (in *loaded) keep(k *kept, src []float64) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	if in.key == (loadKey{}) || p != k.src || p == 0 {
		k.v, k.src = k.v[:0], p
		return
	}
	k.v = append(k.v[:0], src...)
}

// f64bytes is v's memory as bytes (for a bitwise comparison: NaN payloads and signed zeros
// count).
func f64bytes(v []float64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 8*len(v))
}

// transposeTile is the side of the square tiles transpose copies, so that a tile's source
// rows and destination rows both stay in cache (32·32 float32 values: 4 KiB).
const transposeTile = 32

// transpose writes dst[e][c][r] = src[e][r][c] for E matrices of rows×cols, tile by tile.
func transpose(dst, src []float32, E, rows, cols int) {
	transposeStrips(dst, src, rows, cols, 0, E*((rows+transposeTile-1)/transposeTile))
}

// transpose is transpose split over st.par goroutines by strips of transposeTile source rows.
func (st *state) transpose(dst, src []float32, E, rows, cols int) {
	strips := (rows + transposeTile - 1) / transposeTile
	parFor(st.par, E*strips, transposeTile*cols, transposeArgs{dst, src, rows, cols}, transposeArgs.run)
}

// transposeArgs are the operands of a split transpose.
type transposeArgs struct {
	dst, src   []float32
	rows, cols int
}

func (a transposeArgs) run(lo, hi int) { transposeStrips(a.dst, a.src, a.rows, a.cols, lo, hi) }

// transposeStrips transposes strips [lo, hi) of transpose's matrices: strip x covers source
// rows [r0, r0+transposeTile) of matrix x / strips, r0 = (x mod strips)·transposeTile.
func transposeStrips(dst, src []float32, rows, cols, lo, hi int) {
	n := rows * cols
	strips := (rows + transposeTile - 1) / transposeTile
	for x := lo; x < hi; x++ {
		e, r0 := x/strips, x%strips*transposeTile
		r1 := min(r0+transposeTile, rows)
		s, t := src[e*n:(e+1)*n], dst[e*n:(e+1)*n]
		for c0 := 0; c0 < cols; c0 += transposeTile {
			c1 := min(c0+transposeTile, cols)
			for r := r0; r < r1; r++ {
				row := s[r*cols+c0 : r*cols+c1]
				for j, v := range row {
					t[(c0+j)*rows+r] = v
				}
			}
		}
	}
}

// grow returns v resized to n elements, reusing its storage when it is large enough. The
// contents are unspecified.
func grow[T any](v []T, n int) []T {
	if cap(v) < n {
		return make([]T, n)
	}
	return v[:n]
}
