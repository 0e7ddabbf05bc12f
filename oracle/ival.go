package oracle

import (
	"math"
	"math/bits"

	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/moe"
)

// ivec is a vector of enclosures in center/radius form: the path's value of element i is
// provably in [c[i]−r[i], c[i]+r[i]]. r[i] = 0 means the value is known exactly (the check is
// then bitwise, up to the sign of zero). A NaN or +Inf radius means nothing is known (the
// element is unconstrained: poison the path never reads, or a value that may overflow).
type ivec struct {
	c, r []float64
}

func newIvec(n int) ivec { return ivec{c: hugemem.Float64s(n), r: hugemem.Float64s(n)} }

func (v ivec) len() int { return len(v.c) }

// known reports whether element i is constrained.
func (v ivec) known(i int) bool {
	r, c := v.r[i], v.c[i]
	return finite(r) && c == c
}

func (v ivec) setUnknown(i int) { v.c[i], v.r[i] = 0, math.NaN() }

// pointIvec encloses exactly known values (inputs, or a path's reported stage values).
// NaN and ±Inf values become unknown elements: whatever follows from them is unconstrained.
func pointIvec(x []float64) ivec {
	v := ivec{c: append([]float64(nil), x...), r: make([]float64, len(x))}
	for i, c := range v.c {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			v.setUnknown(i)
		}
	}
	return v
}

func pointIvec32(x []float32) ivec {
	v := newIvec(len(x))
	for i, c := range x {
		v.c[i] = float64(c)
		if math.IsNaN(v.c[i]) || math.IsInf(v.c[i], 0) {
			v.setUnknown(i)
		}
	}
	return v
}

// f64slack is a relative allowance for float64 evaluation error in our own computation of a
// center or bound: each is a short chain of float64 operations, each with relative error at
// most 2^-53; 2^-44 covers chains of up to 2^9 operations with room to spare, and is far
// below any dtype's spacing (fp32's is 2^-23 relative), so it never widens an enclosure
// across a representable value.
const f64slack = 0x1p-44

// tiny is an absolute allowance for underflow in one fp32 operation: with flush-to-zero a
// result below 2^-126 may become 0; with gradual underflow the error is at most 2^-150.
const tiny = 0x1p-126

// roundInto encloses the storage rounding of values enclosed by pre into dtype d: rounding
// to nearest is monotone, so the stored value lies in [round(lo), round(hi)]. The result is
// re-expressed in center/radius form with f64slack added. An interval that may round to
// ±Inf (overflow) becomes unknown.
func roundInto(d moe.DType, c, r float64) (float64, float64) {
	if !finite(r) || !finite(c) {
		return 0, math.NaN()
	}
	if r == 0 {
		if c == 0 {
			return c, 0 // ±0 is its own rounding
		}
		x := d.Round(c)
		if math.IsInf(x, 0) {
			return 0, math.NaN()
		}
		return x, 0
	}
	lo, hi := d.Round(c-r), d.Round(c+r)
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, math.NaN()
	}
	if lo == hi {
		return lo, 0
	}
	cc := lo/2 + hi/2
	rr := (hi/2 - lo/2) * (1 + f64slack)
	return cc, rr
}

// gammaAcc is the accumulation bound factor for an fp32 reduction of n terms in any order,
// with tensor cores allowed: |fl(Σ t) − Σ t| ≤ gammaAcc(n)·Σ|t|.
//
// Derivation: recursive summation with unit roundoff u gives γ_n = n·u/(1−n·u) (Higham,
// Accuracy and Stability, §4.2), for any order. Tensor-core MMA accumulates in fp32 but may
// align a block of products to the largest exponent and truncate (round toward zero), whose
// unit roundoff is 2^-23 instead of 2^-24, and a block of b products plus the running sum is
// b+1 aligned terms: at most n + n/b ≤ 2n truncations in all (Fasi, Higham, Mikaitis,
// Pranesh 2021, "Numerical behavior of NVIDIA tensor cores"). Hence u = 2^-23 and 2n terms.
func gammaAcc(n int) float64 {
	nu := float64(2*n) * 0x1p-23
	if nu >= 0.5 {
		return math.Inf(1)
	}
	return nu / (1 - nu)
}

// trailingExp returns q such that x is an integer multiple of 2^q (the exponent of x's lowest
// set bit); a large value for 0, NaN and ±Inf.
func trailingExp(x float64) int {
	b := math.Float64bits(x)
	e := int(b>>52) & 0x7ff
	m := b & (1<<52 - 1)
	switch {
	case e == 0x7ff || (e == 0 && m == 0):
		return math.MaxInt32
	case e == 0: // subnormal: x = m·2^-1074
		return -1074 + bits.TrailingZeros64(m)
	}
	return e - 1075 + bits.TrailingZeros64(m|1<<52)
}
