package sim

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// ref64 is the layer's formula in float64, slot by slot (no sort, no rounding): a loose
// sanity check of the sim. The real float64 reference and its bounds live in package
// reference and oracle.
func ref64(c *moe.Case) *[7][]float64 {
	T, H, I, E, K := c.T, c.H, c.I, c.E, c.K
	y, dx := make([]float64, T*H), make([]float64, T*H)
	dw1, dw2 := make([]float64, c.LenW1()), make([]float64, c.LenW2())
	db1, db2 := make([]float64, c.LenB1()), make([]float64, c.LenB2())
	drw := make([]float64, c.S())
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	for s, id := range c.Routing.IDs {
		e, t, w := int(id), s/K, c.Routing.Weights[s]
		if e == E {
			continue
		}
		x, dy := c.X[t*H:(t+1)*H], c.DY[t*H:(t+1)*H]
		h1 := make([]float64, 2*I)
		for j := range h1 {
			for h := 0; h < H; h++ {
				h1[j] += x[h] * c.W1[c.W1Index(e, j, h)]
			}
			if c.Bias {
				h1[j] += c.B1[e*2*I+j]
			}
		}
		a := make([]float64, I)
		for j := range a {
			g, u := h1[c.GateCol(j)], h1[c.UpCol(j)]
			if c.Act == moe.GptOss {
				g, u = math.Min(g, 7), math.Max(-7, math.Min(u, 7))
				a[j] = (u + 1) * g * sig(moe.GptOssAlpha*g)
			} else {
				a[j] = g * sig(g) * u
			}
		}
		h2 := make([]float64, H)
		for h := range h2 {
			for j := 0; j < I; j++ {
				h2[h] += a[j] * c.W2[c.W2Index(e, h, j)]
			}
			if c.Bias {
				h2[h] += c.B2[e*H+h]
			}
			y[t*H+h] += w * h2[h]
			drw[s] += dy[h] * h2[h]
		}
		dh2 := make([]float64, H)
		for h := range dh2 {
			dh2[h] = w * dy[h]
			if c.Bias {
				db2[e*H+h] += dh2[h]
			}
		}
		dh1 := make([]float64, 2*I)
		for j := 0; j < I; j++ {
			var da float64
			for h := 0; h < H; h++ {
				da += dh2[h] * c.W2[c.W2Index(e, h, j)]
				dw2[c.W2Index(e, h, j)] += dh2[h] * a[j]
			}
			hg, hu := h1[c.GateCol(j)], h1[c.UpCol(j)]
			var dg, du float64
			if c.Act == moe.GptOss {
				g, u := math.Min(hg, 7), math.Max(-7, math.Min(hu, 7))
				sg := sig(moe.GptOssAlpha * g)
				ig, iu := 0.0, 0.0
				if hg <= 7 {
					ig = 1
				}
				if hu >= -7 && hu <= 7 {
					iu = 1
				}
				dg = ig * da * (u + 1) * (sg + moe.GptOssAlpha*g*sg*(1-sg))
				du = iu * da * g * sg
			} else {
				sg := sig(hg)
				dg, du = da*hu*sg*(1+hg*(1-sg)), da*hg*sg
			}
			dh1[c.GateCol(j)], dh1[c.UpCol(j)] = dg, du
		}
		for j, v := range dh1 {
			if c.Bias {
				db1[e*2*I+j] += v
			}
			for h := 0; h < H; h++ {
				dw1[c.W1Index(e, j, h)] += v * x[h]
				dx[t*H+h] += v * c.W1[c.W1Index(e, j, h)]
			}
		}
	}
	if !c.Bias {
		db1, db2 = nil, nil
	}
	return &[7][]float64{y, dx, dw1, db1, dw2, db2, drw}
}

// TestFloat64Sanity compares the sim with ref64 in the relative Frobenius norm. Tolerance:
// each stored stage rounds once (relative error ≤ u) and there are six stages between an
// input and dW1 (h1, act, h2 / d_h2, d_act, d_h1, and the output), plus fp32 accumulation
// (γₙ ≈ n·2⁻²⁴ worst case for a sum of n terms, n the longest reduction, counted twice for
// the two GEMMs in a row); 8u + 2n·2⁻²⁴ covers that chain with margin (bf16: ≈ 3.1e-2;
// normwise errors are far smaller in practice, which the logged figures show).
func TestFloat64Sanity(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  moe.Config
	}{
		{"bf16/swiglu", moe.Config{T: 8, H: 32, I: 16, E: 4, K: 2, DType: moe.BF16}},
		{"bf16/gptoss-transposed-bias-ep", moe.Config{T: 8, H: 32, I: 16, E: 4, K: 3, DType: moe.BF16, Act: moe.GptOss, Layout: moe.Transposed, Bias: true, EP: moe.EP{World: 2, Rank: 1}}},
		{"fp16/swiglu-bias", moe.Config{T: 6, H: 24, I: 12, E: 3, K: 2, DType: moe.FP16, Bias: true}},
		{"fp32/gptoss", moe.Config{T: 6, H: 24, I: 12, E: 3, K: 2, DType: moe.FP32, Act: moe.GptOss}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := makeCase(t, tc.cfg, routeRandom, moe.Normal, 42)
			got := run(t, New(Options{}), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
			want := ref64(c)
			n := max(c.H, 2*c.I, c.S())
			tol := 8*tc.cfg.DType.UnitRoundoff() + 2*float64(n)*math.Ldexp(1, -24)
			for n, tn := range tensors(got) {
				var num, den float64
				for i, v := range tn.v {
					num += (float64(v) - want[n][i]) * (float64(v) - want[n][i])
					den += want[n][i] * want[n][i]
				}
				rel := math.Sqrt(num / math.Max(den, 1e-300))
				t.Logf("%s: relative error %.2e (tolerance %.1e)", tn.name, rel, tol)
				if len(tn.v) != len(want[n]) || rel > tol || math.IsNaN(rel) {
					t.Errorf("%s: relative error %v > %v (%d values, want %d)", tn.name, rel, tol, len(tn.v), len(want[n]))
				}
			}
		})
	}
}
