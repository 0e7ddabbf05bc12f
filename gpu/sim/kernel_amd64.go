//go:build amd64 && !purego

package sim

import "golang.org/x/sys/cpu"

// The vector kernels (kernel_amd64.s) compute gemv and gemv2 eight columns at a time with
// AVX2: per column the same fp32 multiplies and adds as the Go loops, in the same order and
// with the same operand first in each (x86 returns the first operand's NaN where two NaNs
// meet), so the results are bitwise the Go loops' — NaN payloads and signs included
// (TestVecKernelsBitwise). No FMA: every product is rounded before its add. The build tag
// purego leaves them out.

// hasAVX2 is read-only after package initialisation.
var hasAVX2 = cpu.X86.HasAVX2

// vecCols is the number of leading columns (a multiple of 8) the vector kernels compute for
// rows of n columns and a reduction of length k; 0 where they do not run.
func vecCols(n, k int) int {
	if !hasAVX2 || k <= 0 {
		return 0
	}
	return n &^ 7
}

// gemvVec is gemvGo on columns [0, n) of c (n a positive multiple of 8); a holds k
// coefficients at stride as, b k rows at stride bs.
//
//go:noescape
func gemvVec(c, a *float32, as int, b *float32, bs, k, n int)

// gemv2Vec is gemv2Go on columns [0, n) of c0 and c1 (n a positive multiple of 8).
//
//go:noescape
func gemv2Vec(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int)
