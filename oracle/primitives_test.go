package oracle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// nudge moves x by k float32 ulps (emulates a library function's error).
func nudge(x float32, k int) float32 {
	if math.IsInf(float64(x), 0) {
		return x // an overflowed expf stays +Inf: a 2-ulp-accurate expf cannot return a finite value there
	}
	for ; k > 0; k-- {
		x = math.Nextafter32(x, float32(math.Inf(1)))
	}
	for ; k < 0; k++ {
		x = math.Nextafter32(x, float32(math.Inf(-1)))
	}
	return x
}

// expf emulates an expf whose error is exactly at its documented limit: the float32 value
// farthest from the true exp(x) in the direction of ulps while within |ulps| ulp of it
// (CUDA's expf: max 2 ulp).
func expf(x float32, ulps int) float32 {
	v := math.Exp(float64(x))
	f := float32(v)
	if ulps == 0 || math.IsInf(float64(f), 0) || v == 0 {
		return f
	}
	ulp := float64(math.Nextafter32(f, float32(math.Inf(1)))) - float64(f)
	limit := float64(absI(ulps)) * ulp
	f = nudge(f, ulps)
	for math.Abs(float64(f)-v) > limit {
		f = nudge(f, -sign(ulps))
	}
	return f
}

func absI(k int) int {
	if k < 0 {
		return -k
	}
	return k
}

func sign(k int) int {
	if k < 0 {
		return -1
	}
	return 1
}

// fp32 evaluations of docs/path.md's activation formulas, with expf off by ulps.
func swigluF32(g, u float32, ulps int) float32 { return g / (1 + expf(-g, ulps)) * u }

func gptossF32(g, u float32, ulps int) float32 {
	if g > 7 {
		g = 7
	}
	u = min(max(u, -7), 7)
	return (u + 1) * (g / (1 + expf(-float32(1.702)*g, ulps)))
}

func swigluBwdF32(g, u, da float32, ulps int) (float32, float32) {
	s := 1 / (1 + expf(-g, ulps))
	return da * u * s * (1 + g*(1-s)), da * g * s
}

func gptossBwdF32(g0, u0, da float32, ulps int) (float32, float32) {
	g, u := min(g0, 7), min(max(u0, -7), 7)
	ag := float32(1.702) * g
	s := 1 / (1 + expf(-ag, ulps))
	dg := da * (u + 1) * (s + ag*(s*(1-s)))
	du := da * g * s
	if g0 > 7 {
		dg = 0
	}
	if u0 > 7 || u0 < -7 {
		du = 0
	}
	return dg, du
}

func inRV(x rv, got float32) bool {
	if x.unknown() {
		return true
	}
	g := float64(got)
	if math.IsInf(x.v, 0) {
		return g == x.v
	}
	return math.Abs(g-x.v) <= x.e
}

// TestActivationEnclosure: for random stored inputs in every dtype, the fp32 evaluation of
// each activation, forward and backward, with expf exact or off by ±2 ulp, lies in the
// enclosure. Inputs include the gpt-oss clamp points, zeros, and large magnitudes.
func TestActivationEnclosure(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float64{0, 7, -7, 7.0000001, 6.9999999, 1e-30, -1e-30, 88, -88, 100, -100, 1e6, -1e6, 0.5}
	for _, d := range moe.DTypes() {
		for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
			name := d.String() + "/" + act.String()
			t.Run(name, func(t *testing.T) {
				bad := 0
				for n := 0; n < 20000; n++ {
					draw := func() float64 {
						if rng.IntN(8) == 0 {
							return d.Round(special[rng.IntN(len(special))])
						}
						return d.Round(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(5)-2)))
					}
					g, u, da := draw(), draw(), draw()
					fw := arith{}.actForward(act, exactRV(g), exactRV(u))
					dg, du := arith{}.actBackward(act, exactRV(g), exactRV(u), exactRV(da))
					for _, ulps := range []int{-2, 0, 2} {
						var a, bg, bu float32
						if act == moe.SwiGLU {
							a = swigluF32(float32(g), float32(u), ulps)
							bg, bu = swigluBwdF32(float32(g), float32(u), float32(da), ulps)
						} else {
							a = gptossF32(float32(g), float32(u), ulps)
							bg, bu = gptossBwdF32(float32(g), float32(u), float32(da), ulps)
						}
						if !inRV(fw, a) || !inRV(dg, bg) || !inRV(du, bu) {
							bad++
							if bad < 5 {
								t.Errorf("%s g=%v u=%v da=%v ulps=%d: fwd %v in %v±%v; dg %v in %v±%v; du %v in %v±%v",
									name, g, u, da, ulps, a, fw.v, fw.e, bg, dg.v, dg.e, bu, du.v, du.e)
							}
						}
					}
				}
			})
		}
	}
}

// TestReduceEnclosure: fp32 dot products of dtype values in several summation orders
// (forward, backward, pairwise, and blocks of 8 aligned to the block's largest exponent and
// truncated, as tensor cores may do) all lie in the enclosure; integer data is exact.
func TestReduceEnclosure(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, d := range moe.DTypes() {
		for _, integer := range []bool{false, true} {
			for _, k := range []int{1, 2, 7, 64, 300, 2048} {
				a := make([]float64, k)
				b := make([]float64, k)
				for trial := 0; trial < 20; trial++ {
					for l := range a {
						if integer {
							a[l], b[l] = float64(rng.IntN(9)-4), float64(rng.IntN(9)-4)
						} else {
							a[l], b[l] = d.Round(rng.NormFloat64()), d.Round(rng.NormFloat64()/math.Sqrt(float64(k)))
						}
					}
					var gotC, gotR float64
					reduce(d, exactMat(a, 1, k), exactMat(b, 1, k), nil, func(_, _ int, c, r float64) { gotC, gotR = c, r })
					if integer && gotR != 0 {
						t.Errorf("%s integer k=%d: radius %v, want exact", d, k, gotR)
					}
					for _, s := range sumOrders(a, b) {
						if math.Abs(float64(s)-gotC) > gotR {
							t.Errorf("%s k=%d integer=%v: fp32 sum %v outside %v ± %v", d, k, integer, s, gotC, gotR)
						}
					}
				}
			}
		}
	}
}

func sumOrders(a, b []float64) []float32 {
	p := make([]float32, len(a))
	for i := range a {
		p[i] = float32(a[i] * b[i]) // exact for bf16/fp16 products; fp32 products rounded once
	}
	var fwd, bwd float32
	for i := range p {
		fwd += p[i]
		bwd += p[len(p)-1-i]
	}
	var pair func([]float32) float32
	pair = func(x []float32) float32 {
		if len(x) == 1 {
			return x[0]
		}
		m := len(x) / 2
		return pair(x[:m]) + pair(x[m:])
	}
	// truncating block accumulation: align to the largest exponent among the block and the
	// accumulator, keep 24 bits, truncate
	var acc float64
	for i := 0; i < len(a); i += 8 {
		terms := []float64{acc}
		for j := i; j < i+8 && j < len(a); j++ {
			terms = append(terms, a[j]*b[j])
		}
		mx := 0.0
		for _, x := range terms {
			mx = math.Max(mx, math.Abs(x))
		}
		if mx == 0 {
			continue
		}
		_, e := math.Frexp(mx)
		q := math.Ldexp(1, e-24)
		s := 0.0
		for _, x := range terms {
			s += math.Trunc(x/q) * q
		}
		acc = float64(float32(s))
	}
	return []float32{fwd, bwd, pair(p), float32(acc)}
}

func TestRoundInto(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    moe.DType
		c, r float64
		wc   float64
		wr   float64
	}{
		{"exact/bf16", moe.BF16, 1.5, 0, 1.5, 0},
		{"collapse/bf16", moe.BF16, 1.0 + 1.0/1024, 1.0 / 4096, 1, 0},
		{"straddle/bf16", moe.BF16, 1.0 + 1.0/256, 1.0 / 4096, 1 + 1.0/256, 1.0 / 256},
		{"overflow/fp16", moe.FP16, 70000, 0, 0, math.NaN()},
		{"unknown", moe.FP32, 1, math.NaN(), 0, math.NaN()},
	} {
		c, r := roundInto(tc.d, tc.c, tc.r)
		if math.IsNaN(tc.wr) {
			if !math.IsNaN(r) {
				t.Errorf("%s: got %v±%v, want unknown", tc.name, c, r)
			}
			continue
		}
		if c != tc.wc || math.Abs(r-tc.wr) > tc.wr*1e-12 {
			t.Errorf("%s: got %v±%v, want %v±%v", tc.name, c, r, tc.wc, tc.wr)
		}
	}
}

func TestTrailingExp(t *testing.T) {
	for _, tc := range []struct {
		x float64
		q int
	}{{1, 0}, {2, 1}, {3, 0}, {0.5, -1}, {0.75, -2}, {-12, 2}, {math.Ldexp(1, -140), -140}} {
		if got := trailingExp(tc.x); got != tc.q {
			t.Errorf("trailingExp(%v) = %d, want %d", tc.x, got, tc.q)
		}
	}
}
