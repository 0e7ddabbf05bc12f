//go:build openblas

package oracle

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// dgemmNT sets C = A·Bᵀ (A m×k, B n×k, C m×n, all row-major, contiguous) in float64 with
// OpenBLAS's cblas_dgemm: the build tag openblas (make build-openblas; needs cgo and
// libopenblas-dev), because gonum's pure-Go kernel (dgemm_gonum.go, the default build)
// runs several times slower and these products are about half of a real-shape stage-local
// check. OpenBLAS's threads come from its own pool (OPENBLAS_NUM_THREADS sets their count).
//
// Soundness: OpenBLAS sums the k products in its own blocked order (and with FMA), not
// gonum's; reduceAcc's bound on its float64 evaluation, (k+2)·2⁻⁵²·M⁺, holds for every
// order of the k additions and for fused multiply-adds (each product-and-add rounds at most
// once, Higham, Accuracy and Stability §3.1), so enclosures stay enclosures and verdicts do
// not change; TestDgemmNT checks this function against a plain loop within that bound.
// Only the last bits of centers and radii differ from the default build's. They also depend
// on OpenBLAS's thread count: one thread and several give different bits (measured with
// OpenBLAS 0.3.21 above 2^18 multiply-adds), so enclosures are bitwise reproducible for a
// given OPENBLAS_NUM_THREADS and core count (concurrent calls keep the serial call's bits:
// TestDgemmNTConcurrent), not across machines as the default build's are.
//
// cblas requires the leading dimensions to be at least 1, so empty products (m, n or k
// zero) never reach it: C is left alone (m·n = 0) or zeroed (k = 0, the empty sum). Nor do
// dimensions beyond its 32-bit integers (blasint): those go to gonum's Dgemm. Nor do small
// products (blasMinWork): the default build's gonum Dgemm, so tiny cases keep its bits.
func dgemmNT(m, n, k int, A, B, Cm []float64) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(Cm[:m*n])
		return
	}
	if max(m, n, k) > math.MaxInt32 || m*n*k < blasMinWork {
		blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, m, n, k, 1, A, k, B, k, 0, Cm, n)
		return
	}
	// bounds checks before handing raw pointers to C
	_, _, _ = A[m*k-1], B[n*k-1], Cm[m*n-1]
	C.cblas_dgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.double)(&A[0]), C.blasint(k), (*C.double)(&B[0]), C.blasint(k), 0, (*C.double)(&Cm[0]), C.blasint(n))
}

// blasMinWork is the number of multiply-adds below which a product stays with gonum's
// pure-Go Dgemm in the openblas build. OpenBLAS's idle pool threads spin and yield after
// each call: on the H200 host a 16-job run of tiny cases (`moecheck check --backend cuda
// --jobs 16`) spent 235 s of system time in 30 s with the openblas build against 32 s with
// the default build (110.9 against 146.5 cases/s). The products of tiny cases are far
// below this size, and gonum is as fast there; a real-shape stage (2^30 and more) is far
// above it.
const blasMinWork = 1 << 18
