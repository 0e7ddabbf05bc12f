//go:build !openblas

package f64gemm

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// MinWork: in the default build every product uses gonum (see openblas.go).
const MinWork = 0

// Dgemm sets C = op(A)·op(B) + beta·C (row-major, m×n C with stride ldc) with gonum's
// pure-Go Dgemm (the default build, no cgo).
func Dgemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	blas64.Implementation().Dgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

// openblas reports whether products above MinWork go to OpenBLAS (build tag openblas).
const openblas = false

// RowExact reports whether every product computes element (i, j) of C from row i of op(A)
// and column j of op(B) alone, the same way wherever row i sits: gonum's Dgemm sums, for
// every element, the same k-blocks in the same order for the same m, n and k
// (dgemmSerial's DotUnitary over all of k, or dgemmParallel's blocks of 64 along k, chosen
// by m and n), and DotUnitary's lanes depend only on the offset along k. The oracle's
// derived verdict (oracle/derive.go) rests on it.
const RowExact = true

// CoreName is OpenBLAS's kernel family (openblas_get_corename); "" in the default build.
func CoreName() string { return "" }
