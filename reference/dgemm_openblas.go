//go:build openblas

package reference

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

// dgemm sets C = op(A)·op(B) + beta·C (row-major, m×n C with stride ldc, beta 0 or 1) with
// OpenBLAS's cblas_dgemm: the build tag openblas (make build-openblas; needs cgo and
// libopenblas-dev), several times faster than gonum's pure-Go kernel of the default build
// (dgemm_gonum.go). OpenBLAS runs its own thread pool (OPENBLAS_NUM_THREADS sets its size).
//
// Soundness: OpenBLAS sums each element's k products in its own blocked order, with fused
// multiply-adds; the reference's error bound γ_n·P·M (doc.go) holds for any order of the
// additions and for fused multiply-adds (Higham, Accuracy and Stability §3.1), so the
// reference stays within its bound. gemm sends operands with a NaN or Inf to its plain loop
// in both builds, so the IEEE behaviour of non-finite data does not depend on the BLAS.
// The result's last bits depend on OpenBLAS's thread count (one thread or several), so with
// this tag the reference is bitwise reproducible for a given OPENBLAS_NUM_THREADS and core
// count only (the default build's does not depend on the core count: doc.go).
//
// cblas requires leading dimensions of at least 1, so an empty product never reaches it:
// with m or n zero C is empty, with k zero C = beta·C (zeroed for beta 0, as gonum does);
// dimensions beyond its 32-bit integers (blasint) go to gonum's Dgemm, and so do small
// products (blasMinWork: oracle/dgemm_openblas.go says why), which keep the default build's
// bits.
func dgemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if beta != 1 {
			for i := 0; i < m; i++ {
				row := c[i*ldc : i*ldc+n]
				for j := range row {
					if beta == 0 {
						row[j] = 0
					} else {
						row[j] *= beta
					}
				}
			}
		}
		return
	}
	if max(m, n, k, lda, ldb, ldc) > math.MaxInt32 || m*n*k < blasMinWork {
		blas64.Implementation().Dgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	ta, ra, ca := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), m, k // op(A) m×k
	if tA == blas.Trans {
		ta, ra, ca = C.CblasTrans, k, m
	}
	tb, rb, cb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), k, n // op(B) k×n
	if tB == blas.Trans {
		tb, rb, cb = C.CblasTrans, n, k
	}
	// bounds checks (as gonum's) before handing raw pointers to C
	if lda < max(1, ca) || ldb < max(1, cb) || ldc < max(1, n) {
		panic("reference: dgemm: bad leading dimension")
	}
	_, _, _ = a[(ra-1)*lda+ca-1], b[(rb-1)*ldb+cb-1], c[(m-1)*ldc+n-1]
	C.cblas_dgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.double)(&a[0]), C.blasint(lda), (*C.double)(&b[0]), C.blasint(ldb),
		C.double(beta), (*C.double)(&c[0]), C.blasint(ldc))
}

// blasMinWork: products of fewer multiply-adds stay with gonum (see oracle's blasMinWork).
const blasMinWork = 1 << 18
