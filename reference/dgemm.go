package reference

import (
	"gonum.org/v1/gonum/blas"

	"github.com/moecheck/moecheck/internal/f64gemm"
)

// dgemm sets C = op(A)·op(B) + beta·C (row-major, m×n C with stride ldc, beta 0 or 1) in
// float64 (internal/f64gemm: gonum, or OpenBLAS with the build tag openblas). Either sums
// each element's k products in its own order, OpenBLAS with fused multiply-adds; the
// reference's error bound γ_n·P·M (doc.go) holds for any order and for fused multiply-adds
// (Higham, Accuracy and Stability §3.1). gemm sends operands with a NaN or Inf to its plain
// loop in both builds, so the IEEE behaviour of non-finite data does not depend on the BLAS.
func dgemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	f64gemm.Dgemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc)
}
