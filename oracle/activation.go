package oracle

import (
	"math"

	"github.com/moecheck/moecheck/moe"
)

// The activation's fp32 evaluation, op by op as docs/path.md specifies, in enclosure
// arithmetic (fp32.go). Inputs are the stored GEMM 1 outputs (gate, up); outputs are the
// pre-storage fp32 results.

// alphaRV is gpt-oss's 1.702: a path may multiply by float32(1.702) or by 1.702 itself, so
// the constant is the enclosure of both.
var alphaRV = rv{moe.GptOssAlpha, abs(moe.GptOssAlpha - float64(float32(moe.GptOssAlpha)))}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

var one = exactRV(1)

// actForward: SwiGLU a = g/(1+exp(−g))·u; gpt-oss a = (u+1)·g/(1+exp(−1.702·g)) with
// g = min(gate, 7), u = clamp(up, −7, 7).
func (a arith) actForward(act moe.Activation, gate, up rv) rv {
	a.loose = true
	return splitGate(gate, func(gate rv) rv { return a.actForward1(act, gate, up) })
}

func (a arith) actForward1(act moe.Activation, gate, up rv) rv {
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		glu := a.recipOnePlusExp(g, negRV(a.mul(alphaRV, g)))
		return a.mul(a.add(u, one), glu)
	}
	s := a.recipOnePlusExp(gate, negRV(gate))
	return a.mul(s, up)
}

// actBackward returns (d_gate, d_up) for upstream gradient da:
// SwiGLU: σ = 1/(1+exp(−g)); d_g = ((da·u)·σ)·(1 + g·(1−σ)); d_u = (da·g)·σ.
// gpt-oss: σ = 1/(1+exp(−1.702·g)); d_g = [gate ≤ 7]·((da·(u+1))·(σ + (1.702·g)·(σ·(1−σ))));
// d_u = [−7 ≤ up ≤ 7]·((da·g)·σ), with the clamped g and u.
func (a arith) actBackward1(act moe.Activation, gate, up, da rv) (rv, rv) {
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		ag := a.mul(alphaRV, g)
		sig := a.recipOnePlusExp(one, negRV(ag))
		dglu := a.add(sig, a.mul(ag, a.mul(sig, a.sub(one, sig))))
		dg := a.mul(a.mul(da, a.add(u, one)), dglu)
		du := a.mul(a.mul(da, g), sig)
		dg = indicator(gate, moe.GptOssLimit, true, dg)
		du = indicator(up, moe.GptOssLimit, false, du)
		return dg, du
	}
	sig := a.recipOnePlusExp(one, negRV(gate))
	dsilu := a.add(one, a.mul(gate, a.sub(one, sig)))
	dg := a.mul(a.mul(a.mul(da, up), sig), dsilu)
	du := a.mul(a.mul(da, gate), sig)
	return dg, du
}

// indicator applies the clamp's gradient mask: upperOnly → passes where x ≤ lim;
// otherwise passes where −lim ≤ x ≤ lim (torch.clamp's backward, bounds inclusive). Where
// the enclosure of x straddles a bound, the result is the hull of 0 and the gradient.
func indicator(x rv, lim float64, upperOnly bool, grad rv) rv {
	if x.unknown() {
		return unknownRV()
	}
	lo, hi := x.v-x.e, x.v+x.e
	in := func(y float64) bool { return y <= lim && (upperOnly || y >= -lim) }
	switch {
	case in(lo) && in(hi):
		return grad
	case !in(lo) && !in(hi) && (upperOnly || (hi < -lim || lo > lim)):
		return rv{0, 0}
	}
	return hullRV(rv{0, 0}, grad)
}

// actBackward is actBackward1 over the pieces of the gate (splitGate).
func (a arith) actBackward(act moe.Activation, gate, up, da rv) (rv, rv) {
	a.loose = true
	return splitGate2(gate, func(g rv) (rv, rv) { return a.actBackward1(act, g, up, da) })
}

// splitGate2 is splitGate for a function with two results (hulled separately).
func splitGate2(gate rv, f func(rv) (rv, rv)) (rv, rv) {
	var second rv
	first := true
	x := splitGate(gate, func(g rv) rv {
		a, b := f(g)
		if first {
			second, first = b, false
		} else {
			second = hullRV(second, b)
		}
		return a
	})
	if x.unknown() || second.unknown() {
		return unknownRV(), unknownRV()
	}
	return x, second
}

// Gate subdivision. The op-by-op enclosure treats the sigmoid σ(g) and the g beside it as
// independent, so a gate enclosure that spans the sigmoid's transition (e.g. g = 2·10⁵ ± 5·10⁵
// from a bf16 GEMM on data near 2³¹) gives σ ∈ [0, 1] and g·(1−σ) up to 5·10⁵, where the
// true silu'(g) never leaves [−0.1, 1.1]: the dgrad radius grew to 10⁵ times the value.
// Enclosing each piece of a partition of the gate interval and taking the hull is just as
// rigorous (every gate value lies in some piece) and loses only the correlation within a
// piece. Outside [splitLo, splitHi] fp32 σ is constant to within its own rounding (exactly 1
// above 17.4, where 1 + e^−g rounds to 1; below e^−100 under −100, for both activations since
// gpt-oss's 1.702·g only steepens it) and one piece each suffices; inside, pieces of width
// splitWidth bound the loss by about the activation's Lipschitz constant × 1/8.
const (
	splitLo    = -100.0
	splitHi    = 40.0
	splitWidth = 0.125
)

// splitGate returns f(gate), evaluated piecewise when gate's enclosure is wider than
// splitWidth and meets [splitLo, splitHi] (at most (splitHi−splitLo)/splitWidth + 2 = 1122
// pieces; with realistic data the gates' radii are far below splitWidth and f runs once).
// An unknown piece makes the result unknown.
func splitGate(gate rv, f func(rv) rv) rv {
	if gate.unknown() || gate.e <= splitWidth || gate.v+gate.e < splitLo || gate.v-gate.e > splitHi {
		return f(gate)
	}
	lo, hi := gate.v-gate.e, gate.v+gate.e
	piece := func(a, b float64) rv { return rv{a/2 + b/2, (b/2 - a/2) * (1 + f64slack)} }
	var acc rv
	first := true
	add := func(x rv) bool {
		if first {
			acc, first = x, false
		} else {
			acc = hullRV(acc, x)
		}
		return !acc.unknown()
	}
	a := lo
	if lo < splitLo {
		if !add(f(piece(lo, splitLo))) {
			return unknownRV()
		}
		a = splitLo
	}
	top := math.Min(hi, splitHi)
	for a < top {
		b := math.Min(a+splitWidth, top)
		if !add(f(piece(a, b))) {
			return unknownRV()
		}
		a = b
	}
	if hi > splitHi {
		if !add(f(piece(splitHi, hi))) {
			return unknownRV()
		}
	}
	return acc
}
