//go:build !openblas

package f64gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGonumBlocked: a product of some of another's rows (same n and k) gives those rows'
// elements the other's bits where GonumBlocked says both are blocked alike, and other bits
// (summed in another order along k) where it says they are not: the rule the oracle's
// parts of an expert rest on (oracle/parallel.go).
func TestGonumBlocked(t *testing.T) {
	const m, n, k = 256, 64, 200
	rng := rand.New(rand.NewPCG(1, 2))
	A, B := make([]float64, m*k), make([]float64, n*k)
	for i := range A {
		A[i] = rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20)
	}
	for i := range B {
		B[i] = rng.NormFloat64()
	}
	whole := make([]float64, m*n)
	NT(m, n, k, A, B, whole)
	for _, tc := range []struct {
		name   string
		lo, hi int
	}{
		{"blocked/rows-0-200", 0, 200},    // 4 blocks of rows: blocked as the whole
		{"blocked/rows-56-256", 56, 256},  // 200 rows: blocked
		{"serial/rows-64-256", 64, 256},   // 192 rows: 3 blocks, serial
		{"serial/rows-100-101", 100, 101}, // one row
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := tc.hi - tc.lo
			part := make([]float64, mc*n)
			NT(mc, n, k, A[tc.lo*k:tc.hi*k], B, part)
			same := true
			for i := range part {
				if math.Float64bits(part[i]) != math.Float64bits(whole[tc.lo*n+i]) {
					same = false
				}
			}
			if want := GonumBlocked(mc, n) == GonumBlocked(m, n); same != want {
				t.Fatalf("rows [%d, %d): bitwise the whole's: %v; GonumBlocked says %v", tc.lo, tc.hi, same, want)
			}
		})
	}
}
