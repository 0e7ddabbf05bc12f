package oracle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestActivationIntervalEnclosure: with interval inputs — gates as wide as a GEMM on data
// near 2³¹ leaves them (radius up to 10⁶, centers up to ±2³¹), straddling the sigmoid's
// transition and the overflow of expf — every fp32 evaluation at a gate inside the interval
// lies in the enclosure, and the enclosure is constrained (not unknown) wherever the inputs
// are finite. Regression: expRV returned 0·Inf = NaN for e^x underflowing with a radius
// above 709, and an enclosure straddling expf's overflow was unknown.
func TestActivationIntervalEnclosure(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
		t.Run(act.String(), func(t *testing.T) {
			bad, unk := 0, 0
			for n := 0; n < 3000; n++ {
				c := float64(float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(32)))))
				r := math.Abs(rng.NormFloat64()) * math.Pow(2, float64(rng.IntN(21)-4))
				gate := rv{c, r}
				u := float64(float32(rng.NormFloat64() * 1e3))
				da := float64(float32(rng.NormFloat64()))
				fw := arith{}.actForward(act, gate, exactRV(u))
				dg, du := arith{}.actBackward(act, gate, exactRV(u), exactRV(da))
				if fw.unknown() || dg.unknown() || du.unknown() {
					unk++
					if unk < 4 {
						t.Errorf("gate %v±%v u=%v da=%v: unconstrained (fwd %v, dg %v, du %v)", c, r, u, da, fw, dg, du)
					}
					continue
				}
				for _, f := range []float64{-1, -0.5, -0.01, 0, 0.3, 0.999, 1} {
					g := float32(c + f*r)
					if math.Abs(float64(g)-c) > r {
						continue
					}
					for _, ulps := range []int{-2, 0, 2} {
						var a, bg, bu float32
						if act == moe.SwiGLU {
							a = swigluF32(g, float32(u), ulps)
							bg, bu = swigluBwdF32(g, float32(u), float32(da), ulps)
						} else {
							a = gptossF32(g, float32(u), ulps)
							bg, bu = gptossBwdF32(g, float32(u), float32(da), ulps)
						}
						if !inRV(fw, a) || !inRV(dg, bg) || !inRV(du, bu) {
							bad++
							if bad < 5 {
								t.Errorf("gate %v (in %v±%v) u=%v da=%v ulps=%d: fwd %v in %v; dg %v in %v; du %v in %v", g, c, r, u, da, ulps, a, fw, bg, dg, bu, du)
							}
						}
					}
				}
			}
		})
	}
}

// TestSigmoidCollapses: fp32 1 + e^−g is exactly 1 for every g ≥ 17.4 (e^−g < 2⁻²⁵), so σ and
// silu'(g) are known exactly for a gate near 2³¹ however wide its enclosure (regression: the
// ~2⁻²⁴ radius of σ times g ≈ 2³¹ in 1 + g·(1−σ) gave dgrad radii 10⁵× the value).
func TestSigmoidCollapses(t *testing.T) {
	for _, g := range []rv{{0x1p31, 0x1p20}, {20, 1}, {1e6, 0}} {
		sig := arith{}.recipOnePlusExp(one, negRV(g))
		if sig.v != 1 || sig.e != 0 {
			t.Errorf("σ(%v±%v) = %v±%v, want exactly 1", g.v, g.e, sig.v, sig.e)
		}
		ex := expRV(negRV(g))
		if g.v > 1000 && (ex.unknown() || ex.e > tiny || ex.v > tiny) {
			t.Errorf("exp(−(%v±%v)) = %v±%v, want within [0, 2⁻¹²⁶]", g.v, g.e, ex.v, ex.e)
		}
	}
	// straddling expf's overflow: σ ∈ [0, small], constrained
	sig := arith{}.recipOnePlusExp(one, rv{88, 10})
	if sig.unknown() || sig.v-sig.e > 0 || sig.v+sig.e > 1e-33 {
		t.Errorf("σ(−(88±10)) = %v±%v, want within [0, 1e-33]", sig.v, sig.e)
	}
}

// fmaf is fp32 fused multiply-add (one rounding), as nvcc contracts a*b+c by default.
func fmaf(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }

// TestActivationAssociationAndFMA: docs/path.md leaves the association of the activation's
// product chains open and nvcc contracts products into FMAs; the enclosure must contain
// every such evaluation. Regression: rounding every fp32 operation at its endpoints (with
// exact collapse) made enclosures points that gpu/sim's ((1.702·g)·σ)·(1−σ) missed by an ulp
// (props' matches failed 11 of 200 fp32 gpt-oss cases); only the sigmoid's denominator
// 1 + expf(−x), a single add no path evaluates otherwise, is now rounded that way.
func TestActivationAssociationAndFMA(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	bad := 0
	for n := 0; n < 50000; n++ {
		g := float32(rng.NormFloat64() * 3)
		u := float32(rng.NormFloat64() * 3)
		da := float32(rng.NormFloat64())
		for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
			dg, du := arith{}.actBackward(act, exactRV(float64(g)), exactRV(float64(u)), exactRV(float64(da)))
			var variants [][2]float32
			if act == moe.SwiGLU {
				s := 1 / (1 + expf(-g, 0))
				variants = [][2]float32{
					{da * u * s * fmaf(g, 1-s, 1), da * g * s},
					{da * (u * (s * (1 + g*(1-s)))), da * (g * s)},
					{(da * u) * (s * fmaf(g, 1-s, 1)), g * (da * s)},
				}
			} else {
				gg, uu := min(g, 7), min(max(u, -7), 7)
				ag := float32(1.702) * gg
				s := 1 / (1 + expf(-ag, 0))
				variants = [][2]float32{
					{da * (uu + 1) * (s + ag*s*(1-s)), da * gg * s},
					{da * (uu + 1) * fmaf(ag*s, 1-s, s), da * gg * s},
					{da * ((uu + 1) * fmaf(ag, s*(1-s), s)), da * (gg * s)},
				}
				if g > 7 {
					for i := range variants {
						variants[i][0] = 0
					}
				}
				if u > 7 || u < -7 {
					for i := range variants {
						variants[i][1] = 0
					}
				}
			}
			for i, v := range variants {
				if !inRV(dg, v[0]) || !inRV(du, v[1]) {
					bad++
					if bad < 5 {
						t.Errorf("%s g=%v u=%v da=%v variant %d: dg %v in %v; du %v in %v", act, g, u, da, i, v[0], dg, v[1], du)
					}
				}
			}
		}
	}
}
