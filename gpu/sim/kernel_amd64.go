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

// gemvWide and gemv2Wide are gemvVec and gemv2Vec with every fp32 product computed as
// float32(float64(a)·float64(b)) — bitwise the fp32 product, NaN payloads and signs included
// (kernel_amd64.s says why) — which is free of the microcode assist that a VMULPS with a
// subnormal operand or result takes on x86 (about 16× the multiply's time), and about twice
// the plain kernels' time on normal data. The adds are the plain kernels' (an add with
// subnormals takes no assist).
//
//go:noescape
func gemvWide(c, a *float32, as int, b *float32, bs, k, n int)

//go:noescape
func gemv2Wide(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int)

// gemvSel and gemv2Sel choose, per call, between the plain and the wide kernel from the
// calling thread's MXCSR status flags DE (subnormal operand) and UE (underflow), which the
// hardware sets sticky and nothing else in Go reads: set → clear them and run wide (so they
// are set again on exit only where this call meets subnormals too), clear → run plain (which
// sets them where its data is subnormal, so the next call on the thread runs wide). The
// choice follows the data a thread has just seen and costs one STMXCSR per call; it decides
// speed only, never bits: both kernels give the same bits (TestVecKernelsBitwise,
// TestKernelSelection). They return the MXCSR found on entry.
//
//go:noescape
func gemvSel(c, a *float32, as int, b *float32, bs, k, n int) (mxcsr uint32)

//go:noescape
func gemv2Sel(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int) (mxcsr uint32)

// getMXCSR and setMXCSR read and write the calling thread's MXCSR (for tests, which lock the
// OS thread around them).
func getMXCSR() uint32
func setMXCSR(v uint32)

// mxcsrSubnormalFlags are MXCSR's DE and UE bits.
const mxcsrSubnormalFlags = 0x12

// roundBF16Vec and roundFP16Vec are roundAll's bf16 and fp16 loops on blocks of eight
// (kernel_amd64.s): they round v[0:m] in place, stopping at the first block that needs
// RoundFloat32's rare cases (Inf, NaN, fp16 overflow) or at fewer than eight elements left,
// and return m; roundAll does the rest in Go.
//
//go:noescape
func roundBF16Vec(v *float32, n int) (m int)

//go:noescape
func roundFP16Vec(v *float32, n int) (m int)
