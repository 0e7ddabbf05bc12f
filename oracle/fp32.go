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

// arith evaluates the rounding fp32 operations of a stage. The zero value is the path's
// arithmetic; math set is the mathematical mode of the semantics test (enclosure.noRound),
// where results keep the exact float64 value as their center (snap does not move them to
// fp32 values: the centers must stay the mathematical function).
//
// loose is the activation's arithmetic, whose product chains docs/path.md leaves open to any
// association (and nvcc to FMA contraction): a product of two exactly known values is then
// exact only when one factor is a power of two (or zero), for which every association gives
// the same value; any other product gets its rounding radius even when this association
// happens to be exact, because another association may round. Adds and divisions are single
// unambiguous operations and keep exact tracking.
type arith struct{ math, loose bool }

const u32 = 0x1p-24

func unknownRV() rv { return rv{0, math.NaN()} }

func (x rv) unknown() bool { return !finite(x.e) || x.v != x.v }

// finite reports whether x is neither NaN nor ±Inf (x − x is +0 exactly for every finite x,
// NaN for NaN and ±Inf): math.IsNaN(x) || math.IsInf(x, 0) negated, in one subtraction.
func finite(x float64) bool { return x-x == 0 }

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

// finish adds the rounding error of one correctly rounded fp32 operation (+, −, ×, ÷) whose
// exact result (over the inputs' enclosures) lies in [v−e, v+e]: u32·(|v|+e), plus tiny when
// the result may be below the normal range (underflow or flush to zero). The center is kept:
// the radius covers both the rounded and the unrounded result, so the enclosure stays valid
// when a compiler contracts a product into an FMA (nvcc does by default), and when a path
// associates a chain of products differently (docs/path.md leaves the association open; the
// activation may err by a few ulps). See snap for the one place where rounding is tracked.
func (a arith) finish(v, e float64) rv { return finishMath(v, e) }

// snap encloses the result of one correctly rounded fp32 operation whose exact result lies in
// [v−e, v+e] and which no path evaluates otherwise (a single add of two values, not fed by a
// product, so no FMA contraction or re-association applies): round-to-nearest is monotone,
// so the stored value lies in [RN(v−e), RN(v+e)], and where both endpoints round to the same
// normal value the result is known exactly though the operands were not. Used for the
// sigmoid's denominator 1 + expf(−x): it is exactly 1 for every x > 17.4 whatever x's
// radius, which makes σ = 1 and 1 − σ = 0 exact for large gates (without it the 2⁻²⁴ radius
// of σ times a gate near 2³¹ in 1 + g·(1−σ) gave dgrad radii 10⁵× the value). Overflow is
// unknown; where the interval reaches below the normal range, tiny is added.
func (a arith) snap(v, e float64) rv {
	if a.math {
		return finishMath(v, e)
	}
	if math.IsNaN(v) || math.IsNaN(e) || math.IsInf(e, 0) || math.IsInf(v, 0) {
		return unknownRV()
	}
	av := math.Abs(v)
	e += f64slack * av
	lo := math.Nextafter(v-e, math.Inf(-1))
	hi := math.Nextafter(v+e, math.Inf(1))
	rlo, rhi := float64(float32(lo)), float64(float32(hi))
	if math.IsInf(rlo, 0) || math.IsInf(rhi, 0) {
		return unknownRV()
	}
	sub := math.Min(math.Abs(lo), math.Abs(hi)) < 0x1p-125 || (lo < 0 && hi > 0)
	if rlo == rhi && !sub {
		return rv{rlo, 0}
	}
	c := rlo/2 + rhi/2
	r := (rhi/2 - rlo/2) * (1 + f64slack)
	if sub {
		r += tiny
	}
	return rv{c, r}
}

// addSnap is add with the result enclosed by snap (see there for when that is valid).
func (a arith) addSnap(x, y rv) rv {
	if x.unknown() || y.unknown() {
		return unknownRV()
	}
	if x.e == 0 && y.e == 0 {
		return exact32(x.v + y.v)
	}
	return a.snap(x.v+y.v, x.e+y.e)
}

// finishMath is finish of the mathematical mode: u32·(|v|+e) added to the radius, the
// center kept.
func finishMath(v, e float64) rv {
	if !finite(v) || !finite(e) {
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

func (a arith) add(x, y rv) rv {
	if x.unknown() || y.unknown() {
		return unknownRV()
	}
	if x.e == 0 && y.e == 0 {
		return exact32(x.v + y.v)
	}
	return a.finish(x.v+y.v, x.e+y.e)
}

func negRV(x rv) rv { return rv{-x.v, x.e} }

func (a arith) sub(x, y rv) rv { return a.add(x, negRV(y)) }

func (a arith) mul(x, y rv) rv {
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
		if a.loose && !powerOfTwo(x.v) && !powerOfTwo(y.v) {
			return a.finish(x.v*y.v, 0)
		}
		return exact32(x.v * y.v)
	}
	// |x'y' − xy| ≤ |x|·e_y + |y|·e_x + e_x·e_y
	return a.finish(x.v*y.v, math.Abs(x.v)*y.e+math.Abs(y.v)*x.e+x.e*y.e)
}

func (a arith) div(x, y rv) rv {
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
	return a.finish(x.v/y.v, (math.Abs(x.v)*y.e+ay*x.e)/(ay*(ay-y.e)))
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
		return unknownRV() // may or may not overflow (recipOnePlusExp handles this case)
	}
	// exp is increasing: e^x' ∈ [e^lo, e^hi]; expf adds ≤ 2 ulp ≤ 4·u32 of its result and at
	// most tiny where it underflows. The endpoints are used directly: the former
	// e^x·(e^{e_x} − 1) gave 0·Inf = NaN when e^x underflows and e_x > 709 (gates near −2³¹
	// with a large radius), leaving whole rows unconstrained.
	elo := math.Exp(lo)*(1-4*u32-f64slack) - tiny
	ehi := math.Exp(hi)*(1+4*u32+f64slack) + tiny
	elo = math.Max(elo, 0) // expf is never negative
	return rv{elo/2 + ehi/2, (ehi/2 - elo/2) * (1 + f64slack)}
}

// recipOnePlusExp encloses num / (1 + expf(x)) evaluated op by op in fp32 (the sigmoid
// denominators of both activations), including where expf(x) may overflow to +Inf for some
// values in x's enclosure and not for others: then 1 + expf(x) lies in [d_lo, +Inf] with
// d_lo ≥ 1, and the quotient lies between 0 and num/d_lo (a finite enclosure, where the
// op-by-op enclosure would give up). Where every value overflows the quotient is ±0 exactly.
func (a arith) recipOnePlusExp(num, x rv) rv {
	if num.unknown() || x.unknown() || math.IsInf(num.v, 0) {
		return unknownRV()
	}
	if math.IsInf(x.v, 0) || x.v-x.e <= expOverflow-1e-6 && x.v+x.e <= expOverflow-1e-6 || x.v-x.e > expOverflow+1e-6 {
		return a.div(num, a.addSnap(one, expRV(x)))
	}
	// straddles the overflow threshold: expf(x) ≥ e^lo·(1−4u32) − tiny, RN(1+t) ≥ (1+t)(1−u32)
	t := math.Max(math.Exp(x.v-x.e)*(1-4*u32-f64slack)-tiny, 0)
	dlo := math.Max(1, (1+t)*(1-u32-f64slack))
	nlo, nhi := num.v-num.e, num.v+num.e
	qlo, qhi := math.Min(0, nlo/dlo), math.Max(0, nhi/dlo)
	// the division's own rounding (RN is monotone: the rounded quotient stays within the
	// hull of the rounded endpoints, which differ from the endpoints by ≤ u32 relative)
	qlo -= (u32 + f64slack) * math.Abs(qlo)
	qhi += (u32 + f64slack) * math.Abs(qhi)
	return rv{qlo/2 + qhi/2, (qhi/2-qlo/2)*(1+f64slack) + tiny}
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

// powerOfTwo reports whether |x| is a power of two (a normal float64 with a zero mantissa).
func powerOfTwo(x float64) bool {
	b := math.Float64bits(x)
	e := (b >> 52) & 0x7ff
	return e != 0 && e != 0x7ff && b&(1<<52-1) == 0
}
