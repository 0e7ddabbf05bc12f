package oracle

import "math"

// rv encloses one fp32 value the path computes elementwise: the path's value lies in
// [v−e, v+e]. e = 0 means exactly v (then v is an fp32 value). A NaN e means unknown.
//
// Each operation below propagates the enclosure rigorously (the bounds are exact identities
// for the worst case over the inputs' enclosures, not first-order estimates) and adds the
// rounding error of the fp32 operation: u32·|result| for a correctly rounded +, −, ×, ÷
// (IEEE binary32; CUDA's default -prec-div=true), 2 ulp ≤ 4·u32·|result| for expf (CUDA
// Math API, expf max error 2 ulp), plus tiny (2^-126) for a possible underflow/flush to zero,
// plus f64slack for our own float64 evaluation.
//
// Exact tracking: when both inputs are exactly known fp32 values, the correctly rounded fp32
// result of +, −, ×, ÷ equals round32 of the float64 result (Figueroa 1995: double rounding
// is innocuous when the wide format has ≥ 2p+2 bits, 53 ≥ 50), so the result is exactly
// known too. This is what lets integer-valued data be checked bitwise.
type rv struct{ v, e float64 }

const u32 = 0x1p-24

func unknownRV() rv { return rv{0, math.NaN()} }

func (x rv) unknown() bool { return math.IsNaN(x.e) || math.IsInf(x.e, 0) || math.IsNaN(x.v) }

func exactRV(v float64) rv { return rv{v, 0} }

// round32 rounds to float32; results that are subnormal in fp32 are not trusted as exact
// (a flush-to-zero device would give 0), and overflow is unknown.
func exact32(v float64) rv {
	f := float64(float32(v))
	if math.IsInf(f, 0) {
		if math.IsInf(v, 0) {
			return rv{v, 0}
		}
		return unknownRV()
	}
	if f != 0 && math.Abs(f) < 0x1p-126 {
		return rv{f, tiny}
	}
	return rv{f, 0}
}

// finishRV adds the rounding error of one correctly rounded fp32 operation whose exact
// result (over the inputs' enclosures) lies in [v−e, v+e]: u32·(|v|+e), plus tiny when the
// result may be below the normal range (underflow or flush to zero).
func finishRV(v, e float64) rv {
	if math.IsNaN(v) || math.IsNaN(e) || math.IsInf(e, 0) || math.IsInf(v, 0) {
		return unknownRV()
	}
	av := math.Abs(v)
	ne := e + u32*(av+e) + f64slack*av
	if av-e < 0x1p-125 {
		ne += tiny
	}
	if av+ne > math.MaxFloat32 {
		return unknownRV()
	}
	return rv{v, ne}
}

// isExactZero reports whether x is exactly ±0.
func (x rv) isExactZero() bool { return x.e == 0 && x.v == 0 }

// certainlyFinite reports whether every value in the enclosure is finite.
func (x rv) certainlyFinite() bool { return !x.unknown() && !math.IsInf(x.v, 0) }

func addRV(x, y rv) rv {
	if x.unknown() || y.unknown() {
		return unknownRV()
	}
	if x.e == 0 && y.e == 0 {
		return exact32(x.v + y.v)
	}
	return finishRV(x.v+y.v, x.e+y.e)
}

func negRV(x rv) rv { return rv{-x.v, x.e} }

func subRV(x, y rv) rv { return addRV(x, negRV(y)) }

func mulRV(x, y rv) rv {
	if x.unknown() || y.unknown() {
		return unknownRV()
	}
	if (x.isExactZero() && y.certainlyFinite()) || (y.isExactZero() && x.certainlyFinite()) {
		return rv{0, 0} // 0 times a finite value is exactly ±0
	}
	if math.IsInf(x.v, 0) || math.IsInf(y.v, 0) { // only exact Inf reaches here
		if x.e == 0 && y.e == 0 {
			return exact32(x.v * y.v)
		}
		return unknownRV()
	}
	if x.e == 0 && y.e == 0 {
		return exact32(x.v * y.v)
	}
	// |x'y' − xy| ≤ |x|·e_y + |y|·e_x + e_x·e_y
	return finishRV(x.v*y.v, math.Abs(x.v)*y.e+math.Abs(y.v)*x.e+x.e*y.e)
}

func divRV(x, y rv) rv {
	if x.unknown() || y.unknown() {
		return unknownRV()
	}
	if math.IsInf(y.v, 0) && y.e == 0 { // finite / Inf = ±0 exactly
		if math.IsInf(x.v, 0) {
			return unknownRV()
		}
		return rv{0, 0}
	}
	if x.isExactZero() && y.certainlyFinite() && math.Abs(y.v) > y.e {
		return rv{0, 0} // 0 divided by a nonzero finite value is exactly ±0
	}
	if x.e == 0 && y.e == 0 {
		if y.v == 0 {
			return unknownRV()
		}
		return exact32(x.v / y.v)
	}
	ay := math.Abs(y.v)
	if ay <= y.e {
		return unknownRV()
	}
	// |x'/y' − x/y| = |x'y − xy'|/|y y'| ≤ (|x|·e_y + |y|·e_x)/(|y|·(|y| − e_y))
	return finishRV(x.v/y.v, (math.Abs(x.v)*y.e+ay*x.e)/(ay*(ay-y.e)))
}

// expf thresholds: fp32 expf(x) is +Inf for x > 88.7228394 (ln(MaxFloat32)), and 0 or
// subnormal below −87.33655 (ln 2^-126).
const (
	expOverflow = 88.72283935546875
)

func expRV(x rv) rv {
	if x.unknown() {
		return unknownRV()
	}
	if math.IsInf(x.v, 0) {
		if x.v > 0 {
			return rv{math.Inf(1), 0}
		}
		return rv{0, 0}
	}
	lo, hi := x.v-x.e, x.v+x.e
	if lo > expOverflow+1e-6 {
		return rv{math.Inf(1), 0} // every value in the enclosure overflows: expf returns +Inf
	}
	if hi > expOverflow-1e-6 {
		return unknownRV() // may or may not overflow
	}
	v := math.Exp(x.v)
	// |e^x' − e^x| ≤ e^x·(e^{e_x} − 1); expf adds ≤ 2 ulp ≤ 4·u32 of its result (≤ e^{x+e_x}).
	eprop := v * math.Expm1(x.e)
	e := eprop + 4*u32*math.Exp(hi) + tiny + f64slack*v
	return rv{v, e}
}

func minRV(x rv, c float64) rv {
	if x.unknown() {
		return x
	}
	if x.v-x.e >= c { // certainly clamped
		return rv{c, 0}
	}
	if x.v+x.e <= c {
		return x
	}
	// straddles c: value in [x.v−e, c]
	lo := x.v - x.e
	return rv{(lo + c) / 2, (c - lo) / 2 * (1 + f64slack)}
}

func maxRV(x rv, c float64) rv { return negRV(minRV(negRV(x), -c)) }

// hullRV encloses "either a or b" (a branch the enclosure cannot decide).
func hullRV(a, b rv) rv {
	if a.unknown() || b.unknown() {
		return unknownRV()
	}
	lo := math.Min(a.v-a.e, b.v-b.e)
	hi := math.Max(a.v+a.e, b.v+b.e)
	return rv{lo/2 + hi/2, (hi/2 - lo/2) * (1 + f64slack)}
}
