//go:build !openblas

package oracle

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// dgemmNT sets C = A·Bᵀ (A m×k, B n×k, C m×n, all row-major, contiguous) in float64 with
// gonum's pure-Go Dgemm: the default build, which needs no cgo. The build tag openblas
// replaces it with OpenBLAS's cblas_dgemm (dgemm_openblas.go), several times faster.
//
// Any summation order is sound here: reduceAcc bounds the float64 evaluation of every
// product it takes from dgemmNT by (k+2)·2⁻⁵²·M⁺, which holds for every order of the k
// additions (Higham, Accuracy and Stability §3.1: γ_k·Σ|a||b| for any order), so
// verdicts do not depend on which implementation computed C.
func dgemmNT(m, n, k int, A, B, C []float64) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(C[:m*n])
		return
	}
	blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, m, n, k, 1, A, k, B, k, 0, C, n)
}
