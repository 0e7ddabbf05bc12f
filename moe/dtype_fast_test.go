package moe

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRoundFastPath: the bit-level fast path of Round agrees with the generic rounding on
// random values of every magnitude, ties, and the edges of the fast path's exponent range.
func TestRoundFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, d := range dtypeList {
		f := d.format()
		for i := 0; i < 200000; i++ {
			var x float64
			switch i % 4 {
			case 0:
				x = math.Ldexp(1+rng.Float64(), f.emin-3+rng.IntN(f.emax-f.emin+6))
			case 1: // exact ties: p+1 significant bits ending in 1
				m := float64(uint64(1)<<uint(f.p) | uint64(rng.IntN(1<<uint(f.p)))<<1 | 1)
				x = math.Ldexp(m, f.emin+rng.IntN(f.emax-f.emin)-f.p)
			case 2:
				x = rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20)
			default: // near the top of the range
				x = d.MaxFinite() * (1 + (rng.Float64()-0.5)*math.Ldexp(1, -f.p+1))
			}
			if rng.IntN(2) == 0 {
				x = -x
			}
			if got, want := d.Round(x), roundTo(x, f); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s Round(%v) = %v, generic %v", d, x, got, want)
			}
		}
	}
}
