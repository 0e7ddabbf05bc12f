package f64gemm

import "gonum.org/v1/gonum/blas"

// NT sets C = A·Bᵀ (A m×k, B n×k, C m×n, all row-major, contiguous). Empty products never
// reach a BLAS (whose leading dimensions must be at least 1): C is left alone when m·n = 0
// and zeroed when k = 0 (the empty sum).
func NT(m, n, k int, A, B, C []float64) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(C[:m*n])
		return
	}
	Dgemm(blas.NoTrans, blas.Trans, m, n, k, A, k, B, k, 0, C, n)
}
