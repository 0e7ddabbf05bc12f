//go:build openblas

package f64gemm

import (
	"testing"

	"gonum.org/v1/gonum/blas"
)

// TestOneThread: after a product that reaches OpenBLAS, OpenBLAS runs on one thread (its
// callers split over goroutines; its own pool serialised them, openblas.go).
func TestOneThread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m, n, k int
	}{
		{"openblas/above-MinWork", 128, 128, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.m*tc.n*tc.k < MinWork {
				t.Fatalf("shape %dx%dx%d below MinWork %d: it would not reach OpenBLAS", tc.m, tc.n, tc.k, MinWork)
			}
			a, b, c := make([]float64, tc.m*tc.k), make([]float64, tc.k*tc.n), make([]float64, tc.m*tc.n)
			Dgemm(blas.NoTrans, blas.NoTrans, tc.m, tc.n, tc.k, a, tc.k, b, tc.n, 0, c, tc.n)
			if got := threads(); got != 1 {
				t.Fatalf("OpenBLAS runs %d threads after a product, want 1", got)
			}
		})
	}
}
