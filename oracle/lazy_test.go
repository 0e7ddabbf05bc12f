package oracle_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// TestCompareValuesLazy checks that the lazy comparison judges exactly as CompareValues:
// equal results (NaN-poisoned runs included), one differing element, a wrong length.
func TestCompareValuesLazy(t *testing.T) {
	cfg := moe.Config{T: 5, H: 8, I: 4, E: 3, K: 2, DType: moe.BF16}
	c := casetest.Case(t, cfg, 3)
	run := func() *gpu.Result {
		return casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	}
	for _, tc := range []struct {
		name   string
		edit   func(b *gpu.Result)
		wantOK bool
	}{
		{"lazy/equal", func(*gpu.Result) {}, true},
		{"lazy/both-nan", func(b *gpu.Result) { b.Y[0] = float32(math.NaN()) }, true}, // a2.Y[0] is NaN too
		{"lazy/one-differs", func(b *gpu.Result) { b.Y[3] = math.Nextafter32(b.Y[3], 10) }, false},
		{"lazy/short", func(b *gpu.Result) { b.Y = b.Y[:len(b.Y)-1] }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := run()
			tc.edit(b)
			a2 := run()
			if tc.name == "lazy/both-nan" {
				a2.Y[0] = float32(math.NaN())
			}
			want, werr := oracle.CompareValues(c, moe.TensorY, a2, b, "x")
			got, gerr := oracle.CompareValuesLazy(c, moe.TensorY, a2, b, "x")
			if werr != nil || gerr != nil {
				t.Fatalf("errors: %v, %v", werr, gerr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("lazy %v, CompareValues %v", got, want)
			}
			if (len(got) == 0) != tc.wantOK {
				t.Fatalf("failures %v, want pass %v", got, tc.wantOK)
			}
		})
	}
}
