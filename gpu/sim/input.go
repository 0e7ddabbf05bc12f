package sim

import (
	"errors"
	"math"
	"sync/atomic"

	"github.com/moecheck/moecheck/moe"
)

// errInput is returned by the fast checks when a value or length is not what c.Validate
// accepts; Run then asks c.Validate for the error that names the problem.
var errInput = errors.New("sim: case does not validate")

// check accepts exactly the cases c.Validate(lim) accepts; it checks values while
// load converts them (the per-element checks of c.Validate cost more than a small case's
// whole path). Any case it does not accept goes to c.Validate for the message.
func check(c *moe.Case, lim moe.Limits) error {
	if c == nil || c.Global != nil {
		return c.Validate(lim) // the global map check is c.Validate's own
	}
	if err := c.Config.Validate(lim); err != nil {
		return err
	}
	if err := c.Routing.Validate(c.Config); err != nil {
		return err
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
// W1 and W2 (standard for the dgrads, transposed for the forward GEMMs), biases.
func (st *state) load(c *moe.Case) error {
	d, nf := c.DType, c.NonFinite
	E, H, I2, I := c.E, c.H, 2*c.I, c.I
	st.x = grow(st.x, c.LenX())
	st.dy = grow(st.dy, c.LenX())
	if err := st.convert(st.x, c.X, d, nf); err != nil {
		return err
	}
	if err := st.convert(st.dy, c.DY, d, nf); err != nil {
		return err
	}
	st.w1 = grow(st.w1, c.LenW1())
	st.w1t = grow(st.w1t, c.LenW1())
	st.w2 = grow(st.w2, c.LenW2())
	st.w2t = grow(st.w2t, c.LenW2())
	// W1: standard E×2I×H, transposed E×H×2I. Each is converted straight into the buffer of
	// its own layout, then transposed into the other.
	if c.Layout == moe.Transposed {
		if err := st.convert(st.w1t, c.W1, d, nf); err != nil {
			return err
		}
		st.transpose(st.w1, st.w1t, E, H, I2)
	} else {
		if err := st.convert(st.w1, c.W1, d, nf); err != nil {
			return err
		}
		st.transpose(st.w1t, st.w1, E, I2, H)
	}
	// W2: standard E×H×I, transposed E×I×H.
	if c.Layout == moe.Transposed {
		if err := st.convert(st.w2t, c.W2, d, nf); err != nil {
			return err
		}
		st.transpose(st.w2, st.w2t, E, I, H)
	} else {
		if err := st.convert(st.w2, c.W2, d, nf); err != nil {
			return err
		}
		st.transpose(st.w2t, st.w2, E, H, I)
	}
	st.b1, st.b2 = st.b1[:0], st.b2[:0]
	if c.Bias {
		st.b1 = grow(st.b1, c.LenB1())
		st.b2 = grow(st.b2, c.LenB2())
		if err := st.convert(st.b1, c.B1, d, nf); err != nil {
			return err
		}
		if err := st.convert(st.b2, c.B2, d, nf); err != nil {
			return err
		}
	}
	return nil
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
