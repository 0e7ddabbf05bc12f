package moe

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
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

// TestRoundFloat32FP16FastPath: RoundFloat32's fp16 fast path gives the bits the float16
// conversion gives, on a stride through every float32 bit pattern (every sign, exponent and
// many significands) and on every exact tie and its neighbours in the fast path's range.
func TestRoundFloat32FP16FastPath(t *testing.T) {
	check := func(b uint32) {
		x := math.Float32frombits(b)
		got, want := FP16.RoundFloat32(x), float16.Fromfloat32(x).Float32()
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("RoundFloat32(fp16, %#x = %v) = %#x, float16 %#x", b, x, math.Float32bits(got), math.Float32bits(want))
		}
	}
	for b := uint64(0); b <= math.MaxUint32; b += 251 {
		check(uint32(b))
	}
	check(0)          // +0: the zero shortcut
	check(0x80000000) // −0
	for e := uint32(127 - 15); e <= 127+16; e++ {
		for m := uint32(0); m < 1<<10; m += 3 {
			tie := e<<23 | m<<13 | 0x1000
			for _, b := range []uint32{tie - 1, tie, tie + 1, tie | 0x80000000} {
				check(b)
			}
		}
	}
}
