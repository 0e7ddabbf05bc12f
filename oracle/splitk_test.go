package oracle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// splitDtypeSum is a split-K reduction with reduced-precision partials: chunks of c products
// accumulated in fp32 (in order), each rounded to d, the partials added in d with a rounding
// after every add, forwards or backwards.
func splitDtypeSum(d moe.DType, a, b []float32, c int, backwards bool) float64 {
	var parts []float32
	for q := 0; q < len(a); q += c {
		var p float32
		for l := q; l < min(q+c, len(a)); l++ {
			p += a[l] * b[l]
		}
		parts = append(parts, d.RoundFloat32(p))
	}
	var s float32
	for i := range parts {
		if backwards {
			i = len(parts) - 1 - i
		}
		s = d.RoundFloat32(s + parts[i])
	}
	return float64(s)
}

// TestReducedPrecisionSplitBound: reduceAcc's radius with rpr (splitFactor, docs/oracle.md
// §9.6) encloses split-K sums whose partials are reduced in the dtype, for chunk lengths 1
// (the worst case: one partial per product), 2, 3 and 16, both orders, same-sign and random-sign
// data at several scales down to the dtype's subnormals, k up to 4,096; and the plain fp32
// radius does not (so the freedom is needed, and the test can fail).
func TestReducedPrecisionSplitBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	plainMissed := 0
	for _, d := range []moe.DType{moe.BF16, moe.FP16} {
		for _, k := range []int{16, 256, 1024, 4096} {
			for _, scale := range []float64{1, 0x1p-7, 0x1p-14} {
				for _, signs := range []bool{false, true} {
					a, b := make([]float32, k), make([]float32, k)
					A, B := newMat(1, k), newMat(1, k)
					for l := range a {
						x, y := rng.Float64()*scale, rng.Float64()
						if signs && rng.IntN(2) == 0 {
							x = -x
						}
						a[l], b[l] = float32(d.Round(x)), float32(d.Round(y))
						A.c[l], B.c[l] = float64(a[l]), float64(b[l])
					}
					var c, r, r0 float64
					reduceAcc(d, A, B, nil, true, true, nil, func(_, _ int, cc, rr float64) { c, r = cc, rr })
					reduceAcc(d, A, B, nil, true, false, nil, func(_, _ int, _, rr float64) { r0 = rr })
					for _, chunk := range []int{1, 2, 3, 16} {
						for _, back := range []bool{false, true} {
							got := splitDtypeSum(d, a, b, chunk, back)
							if e := math.Abs(got - c); e > r || math.IsNaN(r) {
								t.Errorf("split-%s/k=%d/scale=%g/signs=%v/chunk=%d/back=%v: |%g − %g| = %g > radius %g",
									d, k, scale, signs, chunk, back, got, c, e, r)
							} else if e > r0 {
								plainMissed++
							}
						}
					}
				}
			}
		}
	}
	if plainMissed == 0 {
		t.Error("split-plain: the fp32-only radius enclosed every split sum: the test cannot tell the freedom is needed")
	}
	t.Logf("split sums outside the plain fp32 radius (inside the rpr radius): %d", plainMissed)
}
