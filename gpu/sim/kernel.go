package sim

import (
	"math"

	"github.com/moecheck/moecheck/moe"
)

// gemv adds Σ_{q<k} a[q·as]·b[q·bs+n] to c[n] for every n < len(c), in fp32, q ascending:
// c[n] = (…((c[n] + p₀) + p₁) …) + p_{k−1}, each product p_q rounded to float32 before its add.
// Every GEMM of the path is a sequence of these row updates (the "axpy" form keeps the sum
// order sequential in the reduction index while reading b row by row). Zero coefficients are
// not skipped: 0·Inf and 0·NaN must reach c as NaN.
//
// gemv dispatches to the vector kernels where there are (kernel_amd64.go), which compute the
// same operations in the same order and give the same bits, NaN payloads included — the plain
// one, or on subnormal data the wide-product one (gemvSel chooses, for speed only); gemvGo is
// the loop itself (the reference of those kernels).
func gemv(c, a []float32, as int, b []float32, bs, k int) {
	if vecKernels && len(c) > 0 && k > 0 {
		_, _ = a[(k-1)*as], b[(k-1)*bs+len(c)-1] // the kernel reads no further
		gemvSel(&c[0], &a[0], as, &b[0], bs, k, len(c))
		return
	}
	gemvGo(c, a, as, b, bs, k)
}

// gemvGo is gemv in Go. It is not inlined, so that its compiled body — which operand of each
// add and multiply comes first, which decides the NaN that propagates where two NaNs meet —
// is the one TestVecKernelsBitwise compares the vector kernel against.
//
//go:noinline
func gemvGo(c, a []float32, as int, b []float32, bs, k int) {
	q := 0
	for ; q+4 <= k; q += 4 {
		a0, a1, a2, a3 := a[q*as], a[(q+1)*as], a[(q+2)*as], a[(q+3)*as]
		b0 := b[q*bs:][:len(c)]
		b1 := b[(q+1)*bs:][:len(c)]
		b2 := b[(q+2)*bs:][:len(c)]
		b3 := b[(q+3)*bs:][:len(c)]
		for n := range c {
			c[n] = c[n] + float32(a0*b0[n]) + float32(a1*b1[n]) + float32(a2*b2[n]) + float32(a3*b3[n])
		}
	}
	for ; q < k; q++ {
		a0 := a[q*as]
		b0 := b[q*bs:][:len(c)]
		for n := range c {
			c[n] = c[n] + float32(a0*b0[n])
		}
	}
}

// gemvInDtype is gemv with the accumulator rounded to d after every add (fault AccumInDtype:
// the GEMM accumulates in the dtype instead of fp32).
func gemvInDtype(d moe.DType, c, a []float32, as int, b []float32, bs, k int) {
	for q := 0; q < k; q++ {
		a0 := a[q*as]
		b0 := b[q*bs:][:len(c)]
		for n := range c {
			c[n] = d.RoundFloat32(c[n] + float32(a0*b0[n]))
		}
	}
}

// roundAll stores v in dtype d: v[i] = round_d(v[i]). Where there are vector kernels
// (kernel_amd64.go), they take the blocks of eight without RoundFloat32's rare cases and the
// Go loops the rest, with the same bits (TestRoundAllSameAsRoundFloat32).
func roundAll(d moe.DType, v []float32) {
	switch d {
	case moe.FP32:
		return
	case moe.BF16:
		for len(v) > 0 {
			if vecKernels && len(v) >= 8 {
				v = v[roundBF16Vec(&v[0], len(v)):]
			}
			w := v[:min(8, len(v))] // the block the kernel stopped at, or the tail
			roundBF16(w)
			v = v[len(w):]
		}
	case moe.FP16:
		for len(v) > 0 {
			if vecKernels && len(v) >= 8 {
				v = v[roundFP16Vec(&v[0], len(v)):]
			}
			w := v[:min(8, len(v))]
			roundFP16(w)
			v = v[len(w):]
		}
	default:
		for i, x := range v {
			v[i] = d.RoundFloat32(x)
		}
	}
}

// roundBF16 is roundAll's bf16 loop: moe.BF16.RoundFloat32's finite case inline (a call per
// element was most of the pass).
func roundBF16(v []float32) {
	for i, x := range v {
		b := math.Float32bits(x)
		if b&0x7f800000 == 0x7f800000 {
			v[i] = moe.BF16.RoundFloat32(x)
			continue
		}
		v[i] = math.Float32frombits((b + 0x7fff + (b>>16)&1) & 0xffff0000)
	}
}

// roundFP16 is roundAll's fp16 loop: moe.FP16.RoundFloat32's normal-range case inline.
func roundFP16(v []float32) {
	for i, x := range v {
		b := math.Float32bits(x)
		if e := b >> 23 & 0xff; e >= 127-14 && e < 127+15 {
			v[i] = math.Float32frombits((b + 0xfff + (b>>13)&1) &^ 0x1fff)
			continue
		}
		v[i] = moe.FP16.RoundFloat32(x)
	}
}

// gemv2 is gemv on two outputs that share b: c0 += Σ a0[q·as]·b[q], c1 += Σ a1[q·as]·b[q],
// each with exactly gemv's order and rounding (it only halves the loads of b). Like gemv it
// dispatches to the vector kernel where there is one; gemv2Go is the loop.
func gemv2(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
	c1 = c1[:len(c0)]
	if vecKernels && len(c0) > 0 && k > 0 {
		_, _, _ = a0[(k-1)*as], a1[(k-1)*as], b[(k-1)*bs+len(c0)-1] // the kernel reads no further
		gemv2Sel(&c0[0], &c1[0], &a0[0], &a1[0], as, &b[0], bs, k, len(c0))
		return
	}
	gemv2Go(c0, c1, a0, a1, as, b, bs, k)
}

// gemv2Go is gemv2 in Go (not inlined, for the reason gemvGo is not).
//
//go:noinline
func gemv2Go(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
	c1 = c1[:len(c0)]
	q := 0
	for ; q+4 <= k; q += 4 {
		x0, x1, x2, x3 := a0[q*as], a0[(q+1)*as], a0[(q+2)*as], a0[(q+3)*as]
		y0, y1, y2, y3 := a1[q*as], a1[(q+1)*as], a1[(q+2)*as], a1[(q+3)*as]
		b0 := b[q*bs:][:len(c0)]
		b1 := b[(q+1)*bs:][:len(c0)]
		b2 := b[(q+2)*bs:][:len(c0)]
		b3 := b[(q+3)*bs:][:len(c0)]
		for n := range c0 {
			v0, v1, v2, v3 := b0[n], b1[n], b2[n], b3[n]
			c0[n] = c0[n] + float32(x0*v0) + float32(x1*v1) + float32(x2*v2) + float32(x3*v3)
			c1[n] = c1[n] + float32(y0*v0) + float32(y1*v1) + float32(y2*v2) + float32(y3*v3)
		}
	}
	for ; q < k; q++ {
		x0, y0 := a0[q*as], a1[q*as]
		b0 := b[q*bs:][:len(c0)]
		for n := range c0 {
			c0[n] = c0[n] + float32(x0*b0[n])
			c1[n] = c1[n] + float32(y0*b0[n])
		}
	}
}
