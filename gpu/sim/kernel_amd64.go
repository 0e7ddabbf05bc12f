//go:build amd64 && !purego

package sim

import "golang.org/x/sys/cpu"

// The vector kernels (kernel_amd64.s) compute gemv and gemv2 eight columns at a time with
// AVX2: per column the same fp32 multiplies and adds as the Go loops, in the same order and
// with the same operand first in each (x86 returns the first operand's NaN where two NaNs
// meet), so the results are bitwise the Go loops' as the gc compiler builds them — NaN
// payloads and signs included (TestVecKernelsBitwise; which NaN a Go loop keeps is the
// compiler's operand order, which the race detector's instrumentation changes, so the
// kernels fix it to the normal build's). No FMA: every product is rounded before its add.
// The build tag purego leaves them out.

// vecKernels reports whether the CPU runs them; read-only after package initialisation.
var vecKernels = cpu.X86.HasAVX2

// gemvVec is gemvGo on the n > 0 columns of c; a holds k > 0 coefficients at stride as, b k
// rows at stride bs (the caller checks the bounds).
//
//go:noescape
func gemvVec(c, a *float32, as int, b *float32, bs, k, n int)

// gemv2Vec is gemv2Go on the n > 0 columns of c0 and c1 (the caller checks the bounds).
//
//go:noescape
func gemv2Vec(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int)
