package oracle

import (
	"math"
	"testing"
)

// TestRatioFinite: ratioFinite is ratio, bit for bit, for every finite got against every
// want (±0, subnormal, normal, ±Inf, NaN) and bound (±0, subnormal, normal, +Inf, NaN).
func TestRatioFinite(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 0x1p-1074, -0x1p-1074, 1, -1, 1 + 0x1p-52, 3.5, -1e300, 1e300, math.MaxFloat64, -math.MaxFloat64}
	wants := append(append([]float64{}, vals...), math.Inf(1), math.Inf(-1), math.NaN())
	bounds := []float64{0, math.Copysign(0, -1), 0x1p-1074, 1, 0x1p-60, 1e300, math.Inf(1), math.NaN()}
	for _, g := range vals {
		for _, c := range wants {
			for _, r := range bounds {
				got, want := ratioFinite(g, c, r), ratio(g, c, r)
				if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Errorf("ratioFinite(%v, %v, %v) = %v, ratio = %v", g, c, r, got, want)
				}
			}
		}
	}
}
