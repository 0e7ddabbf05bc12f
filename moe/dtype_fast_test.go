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

// TestRepresentableFastPath: Representable's bit-level fast path agrees with its definition
// (Round(x) == x, NaN counting as a value) on values of every magnitude, rounded and not, the
// edges of the normal range, subnormals, zeros, infinities and NaN.
func TestRepresentableFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, d := range dtypeList {
		f := d.format()
		xs := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), d.MaxFinite(), d.MinNormal(), d.MinSubnormal(),
			math.Nextafter(d.MaxFinite(), math.Inf(1)), math.Nextafter(d.MinNormal(), 0), 2 * d.MaxFinite(), d.MinNormal() / 2}
		for i := 0; i < 200000; i++ {
			x := math.Ldexp(1+rng.Float64(), f.emin-f.p-3+rng.IntN(f.emax-f.emin+f.p+8))
			if i%2 == 0 {
				x = d.Round(x) // a value of d (or ±Inf)
			}
			if rng.IntN(2) == 0 {
				x = -x
			}
			xs = append(xs, x)
		}
		for _, x := range xs {
			want := math.IsNaN(x) || d.Round(x) == x
			if got := d.Representable(x); got != want {
				t.Fatalf("dtype=%s: Representable(%v) = %v, want %v", d, x, got, want)
			}
		}
	}
}
