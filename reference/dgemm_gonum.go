//go:build !openblas

package reference

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// dgemm sets C = op(A)·op(B) + beta·C (row-major, m×n C with stride ldc) with gonum's
// pure-Go Dgemm: the default build, which needs no cgo. The build tag openblas replaces it
// with OpenBLAS's cblas_dgemm (dgemm_openblas.go). Either sums each element's k products
// in its own order; the reference's error bound γ_n·P·M (doc.go) holds for any order.
func dgemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	blas64.Implementation().Dgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}
