//go:build openblas

package f64gemm

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// MinWork is the number of multiply-adds below which a product stays with gonum's pure-Go
// Dgemm in the openblas build. OpenBLAS's idle pool threads spin and yield after each call:
// on the H200 host a 16-job run of tiny cases (`moecheck check --backend cuda --jobs 16`)
// spent 235 s of system time in 30 s with the openblas build against 32 s with the default
// build (110.9 against 146.5 cases/s). The products of tiny cases are far below this size,
// and gonum is as fast there; a real-shape stage (2^30 and more) is far above it.
const MinWork = 1 << 18

// openblas reports whether products above MinWork go to OpenBLAS (build tag openblas).
const openblas = true

// RowExact: OpenBLAS's blocked kernels (packed panels, edge kernels for the rows left over)
// give no guarantee that an element's bits do not depend on its row's position, so the
// oracle derives no verdict in this build (oracle/derive.go) and judges every unit.
const RowExact = false

// CoreName is the kernel family OpenBLAS chose at start-up (openblas_get_corename), e.g.
// "Haswell", "SkylakeX", or a generic fallback such as "Prescott" (CoreTypeFix).
func CoreName() string { return C.GoString(C.openblas_get_corename()) }

// oneThread makes OpenBLAS run every call on the calling thread (openblas_set_num_threads(1)),
// once, before the first call. Its callers split their work over goroutines themselves (the
// oracle over experts and rows, one product per expert on each worker); OpenBLAS's own
// pool on top of that serialised them: its threaded level-3 driver takes one process-wide
// lock per call (level3_lock, OpenBLAS 0.3.21), so N workers' products ran one after the
// other, each on the pool, while the workers' other loops waited, and the idle pool threads
// spun and yielded between calls (system time). With one thread, concurrent calls run side
// by side, and a product's bits no longer depend on the machine's core count.
var oneThread sync.Once

// Dgemm sets C = op(A)·op(B) + beta·C (row-major, m×n C with stride ldc, beta 0 or 1) with
// OpenBLAS's cblas_dgemm; cblas requires leading dimensions of at least 1, so an empty
// product never reaches it (with m or n zero C is empty, with k zero C = beta·C, zeroed for
// beta 0, as gonum does); small products (MinWork) and dimensions beyond its 32-bit
// integers (blasint) go to gonum's Dgemm.
func Dgemm(tA, tB blas.Transpose, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
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
	if max(m, n, k, lda, ldb, ldc) > math.MaxInt32 || m*n*k < MinWork {
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
		panic("f64gemm: bad leading dimension")
	}
	_, _, _ = a[(ra-1)*lda+ca-1], b[(rb-1)*ldb+cb-1], c[(m-1)*ldc+n-1]
	oneThread.Do(func() { C.openblas_set_num_threads(1) })
	C.cblas_dgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.double)(&a[0]), C.blasint(lda), (*C.double)(&b[0]), C.blasint(ldb),
		C.double(beta), (*C.double)(&c[0]), C.blasint(ldc))
}

// threads is OpenBLAS's thread count (for TestOneThread).
func threads() int { return int(C.openblas_get_num_threads()) }
