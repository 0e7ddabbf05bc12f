package f64bits

import (
	"math"
	"testing"
)

// TestEqual: Equal is the element-by-element comparison of math.Float64bits, with length and
// nil-ness: NaN payloads and −0 against +0 differ, equal NaNs are equal.
func TestEqual(t *testing.T) {
	nan1, nan2 := math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0x7ff8000000000002)
	for _, tc := range []struct {
		name string
		a, b []float64
		want bool
	}{
		{"equal/same", []float64{1, 2, 3}, []float64{1, 2, 3}, true},
		{"equal/same-nan", []float64{nan1}, []float64{nan1}, true},
		{"equal/nil-nil", nil, nil, true},
		{"equal/empty-empty", []float64{}, []float64{}, true},
		{"differ/nil-empty", nil, []float64{}, false},
		{"differ/length", []float64{1, 2}, []float64{1, 2, 3}, false},
		{"differ/last", []float64{1, 2, 3}, []float64{1, 2, 4}, false},
		{"differ/signed-zero", []float64{0}, []float64{math.Copysign(0, -1)}, false},
		{"differ/nan-payload", []float64{nan1}, []float64{nan2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Equal(tc.a, tc.b); got != tc.want {
				t.Fatalf("Equal(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
