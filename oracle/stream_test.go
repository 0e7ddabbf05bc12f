package oracle

import (
	"math"
	"testing"
)

// TestRatioFinite: ratio and ratioFinite (which ratio now calls for a finite got) give the
// definition's bits — |got − want|/bound, 0 for an equal pair under a zero bound, +Inf for
// a non-finite got or an exceeded zero bound (ratioDef, ratio as written before it shared
// ratioFinite) — for every got (finite, ±Inf, NaN) against every want (±0, subnormal,
// normal, ±Inf, NaN) and bound (±0, subnormal, normal, +Inf, NaN).
func TestRatioFinite(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 0x1p-1074, -0x1p-1074, 1, -1, 1 + 0x1p-52, 3.5, -1e300, 1e300, math.MaxFloat64, -math.MaxFloat64}
	wants := append(append([]float64{}, vals...), math.Inf(1), math.Inf(-1), math.NaN())
	bounds := []float64{0, math.Copysign(0, -1), 0x1p-1074, 1, 0x1p-60, 1e300, math.Inf(1), math.NaN()}
	same := func(a, b float64) bool {
		return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
	}
	for _, g := range append(append([]float64{}, vals...), math.Inf(1), math.Inf(-1), math.NaN()) {
		for _, c := range wants {
			for _, r := range bounds {
				want := ratioDef(g, c, r)
				if got := ratio(g, c, r); !same(got, want) {
					t.Errorf("ratio(%v, %v, %v) = %v, want %v", g, c, r, got, want)
				}
				if math.IsNaN(g) || math.IsInf(g, 0) {
					continue
				}
				if got := ratioFinite(g, c, r); !same(got, want) {
					t.Errorf("ratioFinite(%v, %v, %v) = %v, want %v", g, c, r, got, want)
				}
			}
		}
	}
}

// ratioDef is ratio's definition, written out on its own.
func ratioDef(got, want, bound float64) float64 {
	if math.IsNaN(got) || math.IsInf(got, 0) {
		return math.Inf(1)
	}
	d := math.Abs(got - want)
	if bound == 0 {
		if d == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return d / bound
}
