package oracle

import (
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
)

// The contract's rounding freedoms (package contract) as enclosure operations. Each freedom
// widens the enclosure to the hull of the values the allowed choices give, derived like the
// rest of the oracle (docs/oracle.md §9); the exact contract (the zero Contract) reduces to
// docs/path.md's enclosures unchanged.

// storeAs encloses a value computed in fp32 (x, already rounded to fp32 by its operation)
// that the contract keeps in fp32, rounds to the dtype, or either.
func storeAs(d moe.DType, x rv, how contract.Rounding, asPath contract.Rounding) rv {
	if how == contract.AsPath {
		how = asPath
	}
	if x.unknown() {
		return x
	}
	switch how {
	case contract.InFP32:
		return x
	case contract.InDtype:
		c, r := roundInto(d, x.v, x.e)
		return rv{c, r}
	}
	c, r := roundInto(d, x.v, x.e)
	if math.IsNaN(r) {
		return unknownRV()
	}
	return hullRV(x, rv{c, r})
}

// sumTerms encloses a sum of short length (K-slot sums, bias-gradient index-adds) under a
// contract.Sum with Acc or AnyOrder set (the path's ordered fp32 sum is ksum's exact chain),
// before the final storage rounding:
//   - all terms exactly known, integer multiples of 2^q, and Σ|t| below 2^(p+q) (p the
//     precision of the accumulator, q above its smallest subnormal exponent): every partial
//     sum in every order is representable, so the sum is exact;
//   - fp32 partial sums in any order: γ_{n−1}(u32)·Σ(|c|+r) (Higham §4.2) + n·2⁻¹²⁶;
//   - dtype partial sums (a rounding after every add, any order): |ŝ_k| ≤ (1+u)|ŝ_{k−1} + t_k|
//     gives an error of at most ((1+u_d)^{n−1} − 1)·Σ(|c|+r) — finite for any n, unlike γ —
//     plus n·MinNormal_d for underflow or flush to zero;
//   - Either: the larger of the two.
//
// Where a partial sum may overflow (Σ(|c|+r) beyond fp32's range, or beyond the dtype's when
// the dtype accumulates: an fp16 atomic add may reach ±Inf before later terms would bring it
// back) the sum is unconstrained.
//
// The operands' own radii add Σr.
func sumTerms(d moe.DType, s contract.Sum, c, r []float64) rv {
	var sum, mag, mp, rad float64
	q := math.MaxInt32
	exact := true
	for i, x := range c {
		if math.IsNaN(r[i]) || math.IsInf(r[i], 0) || math.IsNaN(x) || math.IsInf(x, 0) {
			return unknownRV()
		}
		sum += x
		mag += math.Abs(x)
		mp += math.Abs(x) + r[i]
		rad += r[i]
		if r[i] != 0 {
			exact = false
		}
		if x != 0 {
			q = min(q, trailingExp(x))
		}
	}
	n := len(c)
	if n == 0 {
		return exactRV(0)
	}
	fp32 := s.Acc == contract.AsPath || s.Acc == contract.InFP32 || s.Acc == contract.Either
	dt := s.Acc == contract.InDtype || s.Acc == contract.Either
	growth := math.Expm1(float64(n-1) * math.Log1p(d.UnitRoundoff())) // (1+u_d)^{n−1} − 1
	if mp > math.MaxFloat32 || dt && mp*(1+growth)+float64(n)*d.MinNormal() > d.MaxFinite() {
		// a partial sum may overflow (in fp32, or in the dtype when it accumulates there:
		// fp16 atomics over terms whose magnitudes add up beyond 65504 may reach ±Inf even
		// though the final sum would be in range): unconstrained
		return unknownRV()
	}
	if exact && (mag == 0 || representableSums(moe.FP32, q, mag) && (!dt || representableSums(d, q, mag))) {
		return exact32(sum)
	}
	var acc float64
	if fp32 {
		g := float64(n-1) * u32
		acc = math.Max(acc, g/(1-g)*mp+float64(n)*tiny)
	}
	if dt {
		acc = math.Max(acc, growth*mp+float64(n)*d.MinNormal())
	}
	return rv{sum, rad + acc + float64(n+2)*0x1p-52*mp}
}

// representableSums reports whether every sum of integer multiples of 2^q with total
// magnitude below mag is representable in d: 2^q at or above d's smallest normal (so no
// partial sum is subnormal, and flushing subnormals changes nothing), and mag < 2^(p+q) with
// p d's precision.
func representableSums(d moe.DType, q int, mag float64) bool {
	p := -int(math.Round(math.Log2(d.UnitRoundoff())))
	lsb := int(math.Round(math.Log2(d.MinNormal())))
	return q >= lsb && q < 1<<20 && mag < pow2(p+q) && mag <= d.MaxFinite()
}

// tf32Widen returns m with every operand's enclosure widened to cover rounding or
// truncation to TF32 (10 explicit mantissa bits: relative error below 2⁻¹⁰); operands
// exactly representable in TF32 (low 13 fp32 mantissa bits zero) stay exact.
func tf32Widen(m mat) mat {
	out := mat{m.m, m.k, append([]float64(nil), m.c...), append([]float64(nil), m.r...)}
	for i, c := range out.c {
		if out.r[i] == 0 && math.Float32bits(float32(c))&(1<<13-1) == 0 {
			continue
		}
		out.r[i] += (math.Abs(c) + out.r[i]) * 0x1p-10
	}
	return out
}
