package moe

import (
	"fmt"
	"math"
	"testing"
)

// TestGenerateGivenSameAsGenerate: GenerateGiven's values are Generate's, bit for bit, except
// the given ones, which are +0 — in every data mode and dtype, with and without biases, for
// given X, dY and expert ranges at the start, middle and end (a given value still advances
// the stream: with its draw skipped every later value would differ).
func TestGenerateGivenSameAsGenerate(t *testing.T) {
	givens := []Given{{}, {X: true}, {DY: true}, {Experts: [2]int{0, 1}}, {Experts: [2]int{1, 3}}, {Experts: [2]int{3, 4}},
		{X: true, DY: true, Experts: [2]int{2, 4}}, {X: true, DY: true, Experts: [2]int{0, 4}}}
	for _, d := range []DType{BF16, FP16, FP32} {
		for _, mode := range DataModes() {
			for _, bias := range []bool{false, true} {
				cfg := Config{T: 33, H: 40, I: 24, E: 4, K: 2, DType: d, Bias: bias}
				r, err := RandomRouting(cfg, 5)
				if err != nil {
					t.Fatal(err)
				}
				want, err := Generate(cfg, r, 9, mode)
				if err != nil {
					t.Fatal(err)
				}
				for _, g := range givens {
					name := fmt.Sprintf("%v/%v/bias=%v/given=%+v", d, mode, bias, g)
					got, err := GenerateGiven(cfg, r, 9, mode, g)
					if err != nil {
						t.Fatal(err)
					}
					in := func(e int) bool { return e >= g.Experts[0] && e < g.Experts[1] }
					for _, tc := range []struct {
						name      string
						got, want []float64
						given     func(i int) bool
					}{
						{"x", got.X, want.X, func(int) bool { return g.X }},
						{"w1", got.W1, want.W1, func(i int) bool { return in(i / (len(want.W1) / cfg.E)) }},
						{"w2", got.W2, want.W2, func(i int) bool { return in(i / (len(want.W2) / cfg.E)) }},
						{"b1", got.B1, want.B1, func(i int) bool { return in(i / (len(want.B1) / cfg.E)) }},
						{"b2", got.B2, want.B2, func(i int) bool { return in(i / (len(want.B2) / cfg.E)) }},
						{"dy", got.DY, want.DY, func(int) bool { return g.DY }},
					} {
						if len(tc.got) != len(tc.want) || (tc.got == nil) != (tc.want == nil) {
							t.Fatalf("%s/%s: %d values, want %d", name, tc.name, len(tc.got), len(tc.want))
						}
						for i := range tc.got {
							w := tc.want[i]
							if tc.given(i) {
								w = 0
							}
							if math.Float64bits(tc.got[i]) != math.Float64bits(w) {
								t.Fatalf("%s/%s[%d] = %v, want %v", name, tc.name, i, tc.got[i], w)
							}
						}
					}
				}
			}
		}
	}
}
