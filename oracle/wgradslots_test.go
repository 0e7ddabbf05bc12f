package oracle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
)

// slotsRadius bounds the per-slot form by brute force: per-slot products rounded to the
// dtype, summed in the dtype (a rounding per add) in forward, reverse and shuffled orders and
// in fp32 with one rounding, never leave the center ± radius (exact operands: the GEMM form's
// radius taken as 0, which is stricter than wgrad's). Same-sign terms (the worst case for
// dtype accumulation: a bf16 sum of 1s stops growing at 256) and random signs; an fp16 sum
// whose partial sums may pass 65,504 is unconstrained.
func TestSlotsRadiusEnclosesPerSlotSums(t *testing.T) {
	either := contract.Sum{Acc: contract.Either, AnyOrder: true}
	for _, tc := range []struct {
		name string
		d    moe.DType
		n    int
		gen  func(r *rand.Rand) (float64, float64)
	}{
		{"bf16/ones/300", moe.BF16, 300, func(*rand.Rand) (float64, float64) { return 1, 1 }},
		{"bf16/positive/1000", moe.BF16, 1000, func(r *rand.Rand) (float64, float64) { return 1 + r.Float64(), 0.5 + r.Float64() }},
		{"bf16/normal/64", moe.BF16, 64, func(r *rand.Rand) (float64, float64) { return r.NormFloat64(), r.NormFloat64() }},
		{"fp16/positive/500", moe.FP16, 500, func(r *rand.Rand) (float64, float64) { return 1 + r.Float64(), 0.25 }},
		{"fp16/tiny/40", moe.FP16, 40, func(r *rand.Rand) (float64, float64) { return 1e-4 * r.NormFloat64(), 1e-3 * r.NormFloat64() }},
		{"fp32/normal/500", moe.FP32, 500, func(r *rand.Rand) (float64, float64) { return r.NormFloat64(), r.NormFloat64() }},
		{"bf16/one-slot", moe.BF16, 1, func(r *rand.Rand) (float64, float64) { return r.NormFloat64(), r.NormFloat64() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.n)))
			for trial := 0; trial < 20; trial++ {
				a, b := make([]float64, tc.n), make([]float64, tc.n)
				var center, mp float64
				for s := range a {
					x, y := tc.gen(rng)
					a[s], b[s] = tc.d.Round(x), tc.d.Round(y)
					center += a[s] * b[s]
					mp += math.Abs(a[s] * b[s])
				}
				rad := slotsRadius(tc.d, either, tc.n, 0, mp)
				if math.IsNaN(rad) {
					t.Fatalf("trial %d: unconstrained (M⁺ %g)", trial, mp)
				}
				terms := make([]float32, tc.n)
				for s := range terms {
					terms[s] = tc.d.RoundFloat32(float32(a[s]) * float32(b[s]))
				}
				orders := [][]int{rng.Perm(tc.n), make([]int, tc.n), make([]int, tc.n)}
				for s := range terms {
					orders[1][s], orders[2][s] = s, tc.n-1-s
				}
				for oi, order := range orders {
					var dt, f32 float32
					for _, s := range order {
						dt = tc.d.RoundFloat32(dt + terms[s])
						f32 += terms[s]
					}
					for _, got := range []float32{dt, tc.d.RoundFloat32(f32)} {
						c, r := roundInto(tc.d, center, rad)
						if math.Abs(float64(got)-c) > r {
							t.Fatalf("trial %d order %d: %g outside %g ± %g (center %g, radius before rounding %g)", trial, oi, got, c, r, center, rad)
						}
					}
				}
			}
		})
	}
	// fp32 accumulation alone: the per-slot products' own roundings are what leave the GEMM
	// form (products 1+2⁻⁶+2⁻¹⁴ rounded down to 1+2⁻⁶ in bf16, against exact −(1+2⁻⁶)): the
	// computed sum is 0, the exact one 32·2⁻¹⁴; without δ the bound would miss it.
	{
		d, n := moe.BF16, 64
		var center, mp float64
		var f32 float32
		for s := 0; s < n; s++ {
			a, b := 1+0x1p-7, 1+0x1p-7
			if s%2 == 1 {
				a, b = 1, -(1 + 0x1p-6)
			}
			center += a * b
			mp += math.Abs(a * b)
			f32 += d.RoundFloat32(float32(a) * float32(b))
		}
		rad := slotsRadius(d, contract.Sum{Acc: contract.InFP32}, n, 0, mp)
		c, r := roundInto(d, center, rad)
		got := d.RoundFloat32(f32)
		if got != 0 || math.Abs(float64(got)-c) > r {
			t.Errorf("fp32 sum of bf16 products: %g, want 0 inside %g ± %g", got, c, r)
		}
	}
	// fp16 terms whose partial sums may reach 65,504: unconstrained, not a false bound
	if r := slotsRadius(moe.FP16, either, 100, 0, 70000); !math.IsNaN(r) {
		t.Errorf("fp16 partial sums beyond 65504: radius %g, want unconstrained (NaN)", r)
	}
	// the GEMM form's radius is kept (the result encloses it too)
	if r := slotsRadius(moe.BF16, either, 4, 3, 0); r < 3 {
		t.Errorf("radius %g dropped the GEMM form's 3", r)
	}
}
