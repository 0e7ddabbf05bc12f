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

// GonumBlocked reports whether gonum's Dgemm (v0.17, both builds below MinWork) sums every
// element of an m×n product over blocks of 64 along k (dgemmParallel: C has at least 4
// blocks of 64×64), or over all of k at once (dgemmSerial) otherwise. With k, it decides
// an element's bits (RowExact): a product of some of the rows of another, with the same n
// and k, gives those rows' elements the other's bits when both are blocked alike.
func GonumBlocked(m, n int) bool { return blocks64(m)*blocks64(n) >= 4 }

func blocks64(x int) int { return (x + 63) / 64 }
