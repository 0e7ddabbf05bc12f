package reference

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestSiluSlopeArgMax checks the constant x*: silu' is largest there (the second
// derivative changes sign) with silu'(x*) ≈ 1.0998393, and the bound function is
// monotone and ≥ |silu'| on a grid.
func TestSiluSlopeArgMax(t *testing.T) {
	const eps = 1e-6
	top := siluSlope(siluSlopeArgMax)
	if math.Abs(top-1.0998393201288668) > 1e-15 {
		t.Errorf("silu'(x*) = %.17g, want 1.0998393201288668", top)
	}
	if siluSlope(siluSlopeArgMax-eps) > top || siluSlope(siluSlopeArgMax+eps) > top {
		t.Errorf("x* = %v is not a maximum of silu'", siluSlopeArgMax)
	}
	for x := -30.0; x <= 30; x += 1e-3 {
		if b := siluSlopeBound(math.Abs(x)); math.Abs(siluSlope(x)) > b*(1+4*0x1p-53) {
			t.Fatalf("|silu'(%v)| = %v > bound %v", x, math.Abs(siluSlope(x)), b)
		}
	}
}

// TestActivationEnvelopes checks the magnitude pass's activation rules (package doc) by
// sampling: for magnitudes M_g, M_u and every g ∈ [−M_g, M_g], u ∈ [−M_u, M_u] (endpoints,
// the clamp points ±7 and random points), |act|, |d_g| and |d_u| with |d_act| ≤ 1 stay below
// the envelopes with M(d_act) = 1. Both sides are evaluated in float64 from the same
// operations; a relative slack of 16u covers their roundings.
func TestActivationEnvelopes(t *testing.T) {
	rng := moe.NewRand(7)
	const slack = 1 + 16*0x1p-53
	for _, kind := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
		exact, env := activation{kind: kind}, activation{kind: kind, mag: true}
		for n := 0; n < 20000; n++ {
			mg, mu := 20*rng.Float64(), 20*rng.Float64()
			switch n % 4 {
			case 0:
				mg = 7
			case 1:
				mu = 7
			}
			pts := func(m float64) []float64 {
				v := []float64{-m, m, 0, m * (2*rng.Float64() - 1)}
				if m >= 7 {
					v = append(v, 7, -7)
				}
				if m >= siluSlopeArgMax {
					v = append(v, siluSlopeArgMax, -siluSlopeArgMax)
				}
				return v
			}
			ma := env.forward(mg, mu)
			mdg, mdu := env.backward(mg, mu, 1)
			for _, g := range pts(mg) {
				for _, u := range pts(mu) {
					for _, da := range []float64{1, -1, 2*rng.Float64() - 1} {
						a := exact.forward(g, u)
						dg, du := exact.backward(g, u, da)
						if math.Abs(a) > ma*slack || math.Abs(dg) > mdg*slack || math.Abs(du) > mdu*slack {
							t.Fatalf("%s: g=%v u=%v d_act=%v: |act|=%v |d_g|=%v |d_u|=%v exceed envelopes %v %v %v (M_g=%v M_u=%v)",
								kind, g, u, da, math.Abs(a), math.Abs(dg), math.Abs(du), ma, mdg, mdu, mg, mu)
						}
					}
				}
			}
		}
	}
}
