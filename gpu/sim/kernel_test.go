package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestKernels checks gemv and gemv2 bitwise against the plain sequential fp32 loop of
// docs/path.md (products rounded to float32, sums from +0 in reduction order), including
// NaN/Inf propagation through zero coefficients.
func TestKernels(t *testing.T) {
	rng := moe.NewRand(7)
	for _, sz := range []struct{ n, k, as int }{{1, 1, 1}, {3, 5, 1}, {8, 4, 2}, {17, 9, 3}, {33, 64, 1}, {5, 0, 1}} {
		t.Run(fmt.Sprintf("gemv/n=%d/k=%d/as=%d", sz.n, sz.k, sz.as), func(t *testing.T) {
			bs := sz.n + 2
			a := make([]float32, sz.k*sz.as+1)
			b := make([]float32, sz.k*bs+1)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-20))
			}
			if sz.k > 2 {
				a[sz.as] = 0
				b[bs+1] = float32(math.Inf(1)) // 0·Inf = NaN must reach c[1]
			}
			want := make([]float32, sz.n)
			want1 := make([]float32, sz.n)
			for n := range want {
				var s, s1 float32
				for q := 0; q < sz.k; q++ {
					s += float32(a[q*sz.as] * b[q*bs+n])
					s1 += float32(a[q*sz.as+1] * b[q*bs+n])
				}
				want[n], want1[n] = s, s1
			}
			got, g0, g1 := make([]float32, sz.n), make([]float32, sz.n), make([]float32, sz.n)
			gemv(got, a, sz.as, b, bs, sz.k)
			gemv2(g0, g1, a, a[1:], sz.as, b, bs, sz.k)
			for n := range want {
				for _, p := range [][2]float32{{got[n], want[n]}, {g0[n], want[n]}, {g1[n], want1[n]}} {
					if math.Float32bits(p[0]) != math.Float32bits(p[1]) {
						t.Fatalf("c[%d] = %v, want %v", n, p[0], p[1])
					}
				}
			}
			if sz.k > 2 && want[1] == want[1] {
				t.Fatal("0·Inf did not give NaN")
			}
		})
	}
}

// TestVecKernelsBitwise checks the vector kernels (kernel_amd64.go) bitwise against their Go
// loops gemvGo and gemv2Go: the plain ones (gemvVec, gemv2Vec), the wide-product ones
// (gemvWide, gemv2Wide) and the dispatching gemv and gemv2 (gemvSel, gemv2Sel choosing
// between them), all on the same inputs, on every column count up to 41 (whole blocks of
// eight, the masked tail block, both), reduction lengths with and without a remainder after
// the unrolled quads, coefficient strides, and two kinds of data: operands full of NaNs with
// distinct payloads and signs, infinities, zeros and subnormals, and subnormal-heavy operands
// (subnormals and values whose products underflow or land near the underflow threshold).
// Where two NaNs meet, the NaN that propagates depends on which operand of each instruction
// comes first, so this also pins the kernels' operand order to the compiled Go loop's (a
// product or add with its operands swapped fails here). Under the race detector the Go loop
// is compiled differently (the instrumentation changes which operand the compiler puts
// first), so there the NaNs' payloads are not compared, only where they are.
func TestVecKernelsBitwise(t *testing.T) {
	if !vecKernels {
		t.Skip("no vector kernels in this build or on this CPU (purego, another architecture, no AVX2): the Go loop would be compared with itself")
	}
	rng := moe.NewRand(11)
	data := []struct {
		name string
		gen  func() float32
	}{
		{"special", func() float32 { return specialFloat32(rng) }},
		{"subnormal", func() float32 { return subnormalHeavyFloat32(rng) }},
	}
	kernels := []struct {
		name  string
		gemv  func(c, a []float32, as int, b []float32, bs, k int)
		gemv2 func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int)
	}{
		{"dispatch", gemv, gemv2},
		{"plain", func(c, a []float32, as int, b []float32, bs, k int) {
			if len(c) > 0 && k > 0 {
				gemvVec(&c[0], &a[0], as, &b[0], bs, k, len(c))
			}
		}, func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
			if len(c0) > 0 && k > 0 {
				gemv2Vec(&c0[0], &c1[0], &a0[0], &a1[0], as, &b[0], bs, k, len(c0))
			}
		}},
		{"wide", func(c, a []float32, as int, b []float32, bs, k int) {
			if len(c) > 0 && k > 0 {
				gemvWide(&c[0], &a[0], as, &b[0], bs, k, len(c))
			}
		}, func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
			if len(c0) > 0 && k > 0 {
				gemv2Wide(&c0[0], &c1[0], &a0[0], &a1[0], as, &b[0], bs, k, len(c0))
			}
		}},
	}
	for _, dt := range data {
		for _, tc := range []struct {
			name  string
			ks    []int
			as    int
			extra int // bs − n
		}{
			{"unit-stride", []int{1, 3, 4, 5, 8, 11}, 1, 0},
			{"strided", []int{1, 2, 4, 7, 9}, 3, 5},
			{"long", []int{64, 67}, 2, 1},
		} {
			for n := 0; n <= 41; n++ {
				for _, k := range tc.ks {
					t.Run(fmt.Sprintf("data=%s/%s/n=%d/k=%d", dt.name, tc.name, n, k), func(t *testing.T) {
						bs := n + tc.extra
						a0 := make([]float32, k*tc.as+1)
						b := make([]float32, k*bs+n)
						for i := range a0 {
							a0[i] = dt.gen()
						}
						for i := range b {
							b[i] = dt.gen()
						}
						// gemv's c, gemv2's c0 and c1, then 8 guard elements: a store past the
						// end of a row shows as a difference from the Go loop's buffer
						init := make([]float32, 3*n+8)
						for i := range init {
							init[i] = dt.gen()
						}
						want := append([]float32(nil), init...)
						gemvGo(want[:n], a0, tc.as, b, bs, k)
						gemv2Go(want[n:2*n], want[2*n:3*n], a0, a0[1:], tc.as, b, bs, k)
						for _, kn := range kernels {
							got := append([]float32(nil), init...)
							kn.gemv(got[:n], a0, tc.as, b, bs, k)
							kn.gemv2(got[n:2*n], got[2*n:3*n], a0, a0[1:], tc.as, b, bs, k)
							for i := range got {
								if raceBuild && got[i] != got[i] && want[i] != want[i] {
									continue
								}
								if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
									t.Fatalf("kernel %s, element %d: %#08x, want %#08x (the Go loop's)", kn.name, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
								}
							}
						}
					})
				}
			}
		}
	}
}

// specialFloat32 draws operands full of NaNs with random payloads and signs, infinities,
// zeros, subnormals, values near overflow and normal values.
func specialFloat32(rng *rand.Rand) float32 {
	switch rng.IntN(12) {
	case 0: // a NaN with a random payload and sign
		return math.Float32frombits(0x7f800001 | uint32(rng.IntN(1<<22))<<1 | uint32(rng.IntN(2))<<31)
	case 1:
		return float32(math.Inf(1 - 2*rng.IntN(2)))
	case 2:
		return 0
	case 3:
		return math.Float32frombits(uint32(rng.IntN(1 << 23))) // subnormal
	case 4:
		return float32(rng.NormFloat64() * 1e38)
	}
	return float32(rng.NormFloat64())
}

// subnormalHeavyFloat32 draws mostly subnormals of either sign and small normals whose
// products underflow or land near the underflow threshold 2^−126, with some normal values,
// zeros and NaNs.
func subnormalHeavyFloat32(rng *rand.Rand) float32 {
	sign := uint32(rng.IntN(2)) << 31
	switch rng.IntN(10) {
	case 0, 1, 2, 3:
		return math.Float32frombits(sign | uint32(rng.IntN(1<<23))) // subnormal
	case 4, 5, 6: // 2^−80 … 2^−40: products from 2^−160 to 2^−80
		return float32(math.Copysign(math.Ldexp(1+rng.Float64(), -80+rng.IntN(41)), float64(1-2*int(sign>>31))))
	case 7:
		return float32(rng.NormFloat64())
	case 8:
		return math.Float32frombits(sign)
	}
	return math.Float32frombits(0x7f800001 | uint32(rng.IntN(1<<22))<<1 | sign)
}

// TestWideProductBitwise checks the wide product float32(float64(a)·float64(b)) of the wide
// kernels against VMULPS's fp32 product, bitwise, on millions of operand pairs: random bit
// patterns, and each operand drawn from the edge classes — ±0, ±Inf, quiet and signalling
// NaNs with random payloads and signs, subnormals (smallest and largest included), the
// extremes of the normal range, values whose products straddle the overflow threshold and
// the underflow threshold 2^−126 and the smallest subnormal 2^−149 (round-to-nearest-even at
// each), and exact powers of two. gemv with k = 1 on c = −0 stores b[n]·a itself (the
// product is the first operand of the add, and p + (−0) is p for every p, −0 and NaNs
// included), so gemvVec and gemvWide each give the products, with b the first operand.
func TestWideProductBitwise(t *testing.T) {
	if !vecKernels {
		t.Skip("no vector kernels in this build or on this CPU")
	}
	rng := moe.NewRand(5)
	sign := func() uint32 { return uint32(rng.IntN(2)) << 31 }
	mant := func() uint32 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return 1<<23 - 1 - uint32(rng.IntN(4))
		case 2:
			return uint32(rng.IntN(4))
		}
		return uint32(rng.IntN(1 << 23))
	}
	withExp := func(e int) uint32 { return sign() | uint32(e)<<23 | mant() }
	operand := func() uint32 {
		switch rng.IntN(12) {
		case 0:
			return rng.Uint32()
		case 1:
			return sign() // ±0
		case 2:
			return sign() | 0x7f800000 // ±Inf
		case 3: // quiet or signalling NaN, random payload
			return sign() | 0x7f800000 | uint32(1+rng.IntN(1<<23-1))
		case 4:
			return sign() | mant() // subnormal (or ±0)
		case 5:
			return withExp(1 + rng.IntN(8)) // smallest normals
		case 6:
			return withExp(254 - rng.IntN(8)) // largest finite
		case 7: // around 2^−63 … 2^−50: products near 2^−126 and 2^−149
			return withExp(127 - 75 + rng.IntN(26))
		case 8: // around 2^50 … 2^80: products near the overflow threshold
			return withExp(127 + 50 + rng.IntN(31))
		case 9:
			return withExp(127 - 20 + rng.IntN(41)) // moderate normals
		case 10:
			return withExp(rng.IntN(256)) // any exponent
		}
		return sign() | uint32(1+rng.IntN(254))<<23 // a power of two
	}
	const n = 4096
	b := make([]float32, n)
	plain, wide := make([]float32, n), make([]float32, n)
	for round := 0; round < 1000; round++ {
		for i := range b {
			b[i] = math.Float32frombits(operand())
		}
		a := []float32{math.Float32frombits(operand())}
		for i := range plain {
			plain[i], wide[i] = float32(math.Copysign(0, -1)), float32(math.Copysign(0, -1))
		}
		gemvVec(&plain[0], &a[0], 1, &b[0], n, 1, n)
		gemvWide(&wide[0], &a[0], 1, &b[0], n, 1, n)
		for i := range plain {
			if math.Float32bits(plain[i]) != math.Float32bits(wide[i]) {
				t.Fatalf("%#08x · %#08x: wide %#08x, VMULPS %#08x", math.Float32bits(b[i]), math.Float32bits(a[0]), math.Float32bits(wide[i]), math.Float32bits(plain[i]))
			}
		}
	}
}

// TestKernelSelection follows gemvSel's and gemv2Sel's choice (on one OS thread, whose MXCSR
// they read): from clear flags, normal data runs the plain kernel and leaves the flags clear;
// subnormal data sets them, so the next call runs wide; a wide call on normal data clears them
// again. Every call's result equals the Go loop's bitwise, whichever kernel ran.
func TestKernelSelection(t *testing.T) {
	if !vecKernels {
		t.Skip("no vector kernels in this build or on this CPU")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	saved := getMXCSR()
	defer setMXCSR(saved)
	const n, k = 20, 9
	rng := moe.NewRand(3)
	normal := func() ([]float32, []float32) {
		a, b := make([]float32, 2*k), make([]float32, k*n)
		for i := range a {
			a[i] = float32(i%5) * 0.25
		}
		for i := range b {
			b[i] = float32(i%7) * 0.125
		}
		return a, b
	}
	subnormal := func() ([]float32, []float32) {
		a, b := make([]float32, 2*k), make([]float32, k*n)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range b {
			b[i] = math.Float32frombits(uint32(rng.IntN(1 << 23)))
		}
		return a, b
	}
	call := func(name string, gen func() ([]float32, []float32), two bool) (wide bool) {
		a, b := gen()
		got := make([]float32, 2*n)
		want := make([]float32, 2*n)
		// the Go loop first, the thread's flags as they were before it (it sets them too)
		saved := getMXCSR()
		if two {
			gemv2Go(want[:n], want[n:], a, a[k:], 1, b, n, k)
		} else {
			gemvGo(want[:n], a, 1, b, n, k)
		}
		setMXCSR(saved)
		var flags uint32
		if two {
			flags = gemv2Sel(&got[0], &got[n], &a[0], &a[k], 1, &b[0], n, k, n)
		} else {
			flags = gemvSel(&got[0], &a[0], 1, &b[0], n, k, n)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d: %#08x, want %#08x", name, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
		return flags&mxcsrSubnormalFlags != 0
	}
	for _, two := range []bool{false, true} {
		setMXCSR(getMXCSR() &^ mxcsrSubnormalFlags)
		steps := []struct {
			name     string
			gen      func() ([]float32, []float32)
			wantWide bool
		}{
			{"normal-from-clear", normal, false},
			{"normal-again", normal, false},
			{"subnormal-first", subnormal, false}, // plain: sets the flags
			{"subnormal-next", subnormal, true},
			{"normal-after-subnormal", normal, true}, // wide: clears them
			{"normal-after-wide", normal, false},
		}
		for _, s := range steps {
			name := fmt.Sprintf("gemv2=%v/%s", two, s.name)
			if wide := call(name, s.gen, two); wide != s.wantWide {
				t.Fatalf("%s: ran wide = %v, want %v", name, wide, s.wantWide)
			}
		}
	}
}

// TestActivateRowsZeroMemo: activateRows, which computes the element of +0 gate and up once
// per call, stores each element's own value bitwise: one call over every row (zero rows
// reusing the first one's value) against one call per row of one column (each computed), for
// rows of +0, −0 and other values, both activations and every dtype.
func TestActivateRowsZeroMemo(t *testing.T) {
	vals := []float32{0, float32(math.Copysign(0, -1)), 0.5, -3, 9, float32(math.NaN()), float32(math.Inf(-1))}
	for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
		for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
			t.Run(fmt.Sprintf("act=%s/dtype=%s", act, d), func(t *testing.T) {
				const S = 40
				h1 := make([]float32, S*2)
				for k := range h1 {
					if i := k / 2; i%3 != 0 { // every third row all +0
						h1[k] = vals[(k*5+i)%len(vals)]
					}
				}
				st := &state{cfg: moe.Config{T: S, H: 1, I: 1, E: 1, K: 1, Act: act, DType: d}, h1: h1, act: make([]float32, S)}
				st.activateRows(0, S)
				all := append([]float32(nil), st.act...)
				for i := 0; i < S; i++ {
					st.activateRows(i, i+1)
				}
				for i := range all {
					if math.Float32bits(all[i]) != math.Float32bits(st.act[i]) {
						t.Fatalf("row %d: %#08x, want %#08x", i, math.Float32bits(all[i]), math.Float32bits(st.act[i]))
					}
				}
			})
		}
	}
}

// TestRoundAllSameAsRoundFloat32: roundAll, whose bf16 and fp16 loops inline
// RoundFloat32's common case (and where there are vector kernels run them on blocks of eight
// without its rare cases), stores the bits RoundFloat32 gives, for every dtype, on a stride
// through every float32 bit pattern (NaN payloads, ±Inf, ±0, subnormals, overflow to Inf,
// ties), and on runs of the values the vector kernels take — every exponent below fp16's
// overflow range or bf16's Inf/NaN, random significands, ties to even both ways and their
// neighbours, fp16's subnormal range and the boundary 2^−14 — with now and then a value that
// stops them (Inf, NaN, fp16 overflow) and lengths that leave a tail.
func TestRoundAllSameAsRoundFloat32(t *testing.T) {
	var stride []float32
	for b := uint64(0); b <= math.MaxUint32; b += 977 {
		stride = append(stride, math.Float32frombits(uint32(b)))
	}
	for _, b := range []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffbfffff, 0x477fefff, 0x477ff000, 0x38800000, 0x387fffff, 0x3f808000, 0x3f818000} {
		stride = append(stride, math.Float32frombits(b))
	}
	rng := moe.NewRand(13)
	runs := func(maxExp int) []float32 {
		var v []float32
		for i := 0; i < 1<<18; i++ {
			m := uint32(rng.IntN(1 << 23))
			switch rng.IntN(4) {
			case 0: // a bf16 tie or a neighbour
				m = m&^0xffff | 0x8000 + uint32(rng.IntN(3)) - 1
			case 1: // an fp16 tie (normal range) or a neighbour
				m = m&^0x1fff | 0x1000 + uint32(rng.IntN(3)) - 1
			}
			e := uint32(rng.IntN(maxExp + 1))
			if rng.IntN(3) == 0 { // fp16's subnormal range and its boundary
				e = uint32(127 - 25 + rng.IntN(12))
			}
			b := uint32(rng.IntN(2))<<31 | e<<23 | m&0x7fffff
			if rng.IntN(200) == 0 { // a value that stops the kernels
				b = []uint32{0x7f800000, 0xffc00123, 0x7f800001, 0x47800000, 0xc77ff000}[rng.IntN(5)]
			}
			v = append(v, math.Float32frombits(b))
		}
		return v[:len(v)-rng.IntN(8)]
	}
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		maxExp := 254
		if d == moe.FP16 {
			maxExp = 127 + 14
		}
		for _, in := range []struct {
			name string
			v    []float32
		}{{"stride", stride}, {"runs", runs(maxExp)}} {
			t.Run("dtype="+d.String()+"/"+in.name, func(t *testing.T) {
				got := append([]float32(nil), in.v...)
				roundAll(d, got)
				for i, x := range in.v {
					if want := d.RoundFloat32(x); math.Float32bits(got[i]) != math.Float32bits(want) {
						t.Fatalf("%#08x: %#08x, RoundFloat32 %#08x", math.Float32bits(x), math.Float32bits(got[i]), math.Float32bits(want))
					}
				}
			})
		}
	}
}
