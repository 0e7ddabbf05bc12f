package oracle

import "github.com/moecheck/moecheck/moe"

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
func actForward(act moe.Activation, gate, up rv) rv {
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		glu := divRV(g, addRV(one, expRV(negRV(mulRV(alphaRV, g)))))
		return mulRV(addRV(u, one), glu)
	}
	s := divRV(gate, addRV(one, expRV(negRV(gate))))
	return mulRV(s, up)
}

// actBackward returns (d_gate, d_up) for upstream gradient da:
// SwiGLU: σ = 1/(1+exp(−g)); d_g = ((da·u)·σ)·(1 + g·(1−σ)); d_u = (da·g)·σ.
// gpt-oss: σ = 1/(1+exp(−1.702·g)); d_g = [gate ≤ 7]·((da·(u+1))·(σ + (1.702·g)·(σ·(1−σ))));
// d_u = [−7 ≤ up ≤ 7]·((da·g)·σ), with the clamped g and u.
func actBackward(act moe.Activation, gate, up, da rv) (rv, rv) {
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		ag := mulRV(alphaRV, g)
		sig := divRV(one, addRV(one, expRV(negRV(ag))))
		dglu := addRV(sig, mulRV(ag, mulRV(sig, subRV(one, sig))))
		dg := mulRV(mulRV(da, addRV(u, one)), dglu)
		du := mulRV(mulRV(da, g), sig)
		dg = indicator(gate, moe.GptOssLimit, true, dg)
		du = indicator(up, moe.GptOssLimit, false, du)
		return dg, du
	}
	sig := divRV(one, addRV(one, expRV(negRV(gate))))
	dsilu := addRV(one, mulRV(gate, subRV(one, sig)))
	dg := mulRV(mulRV(mulRV(da, up), sig), dsilu)
	du := mulRV(mulRV(da, gate), sig)
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
