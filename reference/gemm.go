package reference

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// gemm sets C = op(A)·op(B) + beta·C for row-major A, B, C (C is m×n with stride ldc),
// beta 0 or 1. The operands are contiguous slices of their matrices. beta = 1 on a C that
// is known to be zero (a fresh gradient) saves Dgemm's pass that zeroes C.
//
// With ieee set it first checks that both operands are finite: gonum's Dgemm skips zero
// multipliers, so 0·Inf and 0·NaN would not give NaN as IEEE arithmetic (and the path
// under test) does; a GEMM with a non-finite operand therefore runs as a plain loop.
// Without non-finite inputs no intermediate can overflow float64 (every stage is a sum of
// at most a few products of dtype values, < 2^1024), so ieee is only needed for
// moe.Case.NonFinite.
func gemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int, ieee bool) {
	if m == 0 || n == 0 {
		return
	}
	if ieee && !(allFinite(a) && allFinite(b)) {
		naiveGemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc)
		return
	}
	blas64.Implementation().Dgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

// naiveGemm is gemm by the definition, in IEEE arithmetic, summing over l in order.
func naiveGemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float64
				if tA == blas.Trans {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if tB == blas.Trans {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += av * bv
			}
			if beta != 0 {
				s += c[i*ldc+j]
			}
			c[i*ldc+j] = s
		}
	}
}

func allFinite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
