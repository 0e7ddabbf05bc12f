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
