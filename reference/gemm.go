package reference

import (
	"math"

	"gonum.org/v1/gonum/blas"
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
//
// Dgemm (dgemm: gonum's, or OpenBLAS's with the build tag openblas) splits C over the cores by
// itself; the plain loop is split over the rows of C as sp says.
func gemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int, ieee bool, sp split) {
	if m == 0 || n == 0 {
		return
	}
	if ieee && !(allFinite(a) && allFinite(b)) {
		g := naiveArgs{tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc}
		parFor(sp, m, n*k, &g, (*naiveArgs).rows)
		return
	}
	dgemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc)
}

// gemm is gemm with the run's IEEE setting and split.
func (x *exec) gemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, x.ieee, x.par)
}

// naiveArgs are naiveGemm's operands, for a split over rows.
type naiveArgs struct {
	tA, tB  blas.Transpose
	m, n, k int
	a       []float64
	lda     int
	b       []float64
	ldb     int
	beta    float64
	c       []float64
	ldc     int
}

func (g *naiveArgs) rows(lo, hi int) {
	naiveGemm(g.tA, g.tB, lo, hi, g.n, g.k, g.a, g.lda, g.b, g.ldb, g.beta, g.c, g.ldc)
}

// naiveGemm is gemm by the definition on rows [i0, i1) of C, in IEEE arithmetic, summing
// over l in order.
func naiveGemm(tA, tB blas.Transpose, i0, i1, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := i0; i < i1; i++ {
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
