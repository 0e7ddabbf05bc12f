package reference_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// TestDirectional is gradcheck's fast mode on realistic sizes: for random directions u
// (one per input tensor, so that GEMM 1's output stays affine along it and the truncation
// bound of thirdDerivBound applies) it compares vᵀJu, with v = dY, i.e. the directional
// derivative of L = Σ dY·Y, against central differences of the naive model:
//
//	|(L(θ₊) − L(θ₋)) − Σ_i g_i·(θ₊ᵢ − θ₋ᵢ)| ≤ 2·( 2R + h³/3·B3 + γ_nG·P·Σ_i M_gᵢ·|θ₊ᵢ − θ₋ᵢ| )
//
// with θ± = θ ± h·u evaluated in float64 (the realised steps θ₊ᵢ − θ₋ᵢ enter the right side,
// so the rounding of θ ± h·u costs nothing), h = 2⁻¹⁸ and u scaled to the tensor's RMS. The
// terms are those of TestFiniteDifferences in numerator units: the two loss evaluations'
// rounding, the Taylor remainder 2·h³/6·|L”'| (L is affine in W2, B2 and the routing
// weights, so B3 = 0 there), and the rounding of Run's gradients.
func TestDirectional(t *testing.T) {
	base := moe.Config{T: 64, H: 96, I: 80, E: 8, K: 4, DType: moe.FP32, Bias: true}
	type tc struct {
		name   string
		act    moe.Activation
		layout moe.Layout
		ep     moe.EP
		xScale float64
	}
	tcs := []tc{
		{"swiglu/standard/W=1", moe.SwiGLU, moe.Standard, moe.EP{}, 1},
		{"gptoss/transposed/ep=1of2", moe.GptOss, moe.Transposed, moe.EP{World: 2, Rank: 1}, 8},
		{"swiglu/transposed/ep=3of4", moe.SwiGLU, moe.Transposed, moe.EP{World: 4, Rank: 3}, 2},
		{"gptoss/standard/W=1", moe.GptOss, moe.Standard, moe.EP{}, 4},
	}
	if testing.Short() {
		tcs = tcs[:2]
	}
	for ci, tt := range tcs {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.Act, cfg.Layout, cfg.EP = tt.act, tt.layout, tt.ep
			seed := uint64(100 + ci)
			c := casetest.Case(t, cfg, seed)
			for i := range c.X {
				c.X[i] *= tt.xScale
			}
			res, err := reference.Run(c, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mag, err := reference.Magnitude(c, reference.Options{Stages: true})
			if err != nil {
				t.Fatal(err)
			}
			P := propagation(mag)
			nG := c.S() + c.T + c.H + 2*c.I + c.K + 16
			R := lossRounding(c, mag)
			const h = 0x1p-18
			rng := moe.NewRand(seed)
			for _, p := range params(c, res, mag) {
				rms := 0.0
				for _, v := range p.v {
					rms += v * v
				}
				rms = math.Sqrt(rms / float64(len(p.v)))
				if rms == 0 {
					rms = 1
				}
				for try := 0; ; try++ {
					dir := make([]float64, len(p.v))
					for i := range dir {
						dir[i] = rng.NormFloat64() * rms
					}
					theta := slices.Clone(p.v)
					step := make([]float64, len(p.v))
					for i := range p.v {
						p.v[i] = theta[i] + h*dir[i]
						step[i] = p.v[i]
					}
					lp, sp := naiveLoss(c)
					for i := range p.v {
						p.v[i] = theta[i] - h*dir[i]
						step[i] -= p.v[i]
					}
					lm, sm := naiveLoss(c)
					copy(p.v, theta)
					if !slices.Equal(sp, sm) {
						if try == 5 {
							t.Fatalf("%s: every direction crossed a gpt-oss clamp point", p.name)
						}
						continue // this direction crosses a clamp point: draw another
					}
					var jvp, mg float64
					for i, g := range p.grad {
						jvp += g * step[i]
						mg += p.mag[i] * math.Abs(step[i])
					}
					var b3 float64
					if p.dh1 != nil {
						b3 = thirdDerivBound(c, dirDH1(c, p.name, dir), h)
					}
					tol := 2 * (2*R + h*h*h/3*b3 + gamma(nG)*P*mg)
					diff := math.Abs((lp - lm) - jvp)
					t.Logf("d%s: vᵀJu·2h = %.12g, central difference %.12g, |diff| %.3g, tol %.3g (rounding of L %.2g, truncation %.2g, of Run %.2g)",
						p.name, jvp, lp-lm, diff, tol, 4*R, 2*h*h*h/3*b3, 2*gamma(nG)*P*mg)
					if !(diff <= tol) {
						t.Errorf("d%s: directional derivative %v, central difference %v: |diff| %.3g > tol %.3g",
							p.name, jvp, lp-lm, diff, tol)
					}
					break
				}
			}
		})
	}
}

// dirDH1 is GEMM 1's output change per unit step along dir for the tensor named name
// (X, W1 or B1), slot by slot.
func dirDH1(c *moe.Case, name string, dir []float64) func(s int) []float64 {
	return func(s int) []float64 {
		e, t := int(c.Routing.IDs[s]), s/c.K
		d := make([]float64, 2*c.I)
		for j := range d {
			var acc float64
			switch name {
			case "X":
				for h := 0; h < c.H; h++ {
					acc += dir[t*c.H+h] * c.W1[c.W1Index(e, j, h)]
				}
			case "W1":
				for h := 0; h < c.H; h++ {
					acc += c.X[t*c.H+h] * dir[c.W1Index(e, j, h)]
				}
			case "B1":
				acc = dir[e*2*c.I+j]
			default:
				panic(fmt.Sprintf("dirDH1: %s is not an input of GEMM 1", name))
			}
			d[j] = acc
		}
		return d
	}
}
