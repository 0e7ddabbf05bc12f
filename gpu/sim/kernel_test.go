package sim

import (
	"fmt"
	"math"
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

// TestVecKernelsBitwise checks the dispatching gemv and gemv2 (the vector kernels where the
// platform has them, kernel_amd64.go) bitwise against their Go loops gemvGo and gemv2Go on
// every column count up to 41 (whole blocks of eight, the masked tail block, both), reduction lengths
// with and without a remainder after the unrolled quads, coefficient strides, and operands
// full of NaNs with distinct payloads and signs, infinities, zeros and subnormals: where two
// NaNs meet, the NaN that propagates depends on which operand of each instruction comes
// first, so this also pins the kernels' operand order to the compiled Go loop's. Under the
// race detector the Go loop is compiled differently (the instrumentation changes which operand
// the compiler puts first), so there the NaNs' payloads are not compared, only where they are.
func TestVecKernelsBitwise(t *testing.T) {
	if !vecKernels {
		t.Skip("no vector kernels in this build or on this CPU (purego, another architecture, no AVX2): the Go loop would be compared with itself")
	}
	rng := moe.NewRand(11)
	special := func() float32 {
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
				t.Run(fmt.Sprintf("%s/n=%d/k=%d", tc.name, n, k), func(t *testing.T) {
					bs := n + tc.extra
					a0 := make([]float32, k*tc.as+1)
					b := make([]float32, k*bs+n)
					for i := range a0 {
						a0[i] = special()
					}
					for i := range b {
						b[i] = special()
					}
					// gemv's c, gemv2's c0 and c1, then 8 guard elements: a store past the
					// end of a row shows as a difference from the Go loop's buffer
					init := make([]float32, 3*n+8)
					for i := range init {
						init[i] = special()
					}
					got, want := append([]float32(nil), init...), append([]float32(nil), init...)
					gemv(got[:n], a0, tc.as, b, bs, k)
					gemvGo(want[:n], a0, tc.as, b, bs, k)
					gemv2(got[n:2*n], got[2*n:3*n], a0, a0[1:], tc.as, b, bs, k)
					gemv2Go(want[n:2*n], want[2*n:3*n], a0, a0[1:], tc.as, b, bs, k)
					for i := range got {
						if raceBuild && got[i] != got[i] && want[i] != want[i] {
							continue
						}
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("element %d: %#08x, want %#08x (the Go loop's)", i, math.Float32bits(got[i]), math.Float32bits(want[i]))
						}
					}
				})
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
// RoundFloat32's common case, stores the bits RoundFloat32 gives, on a stride through every
// float32 bit pattern (NaN payloads, ±Inf, ±0, subnormals, overflow to Inf, ties) for every
// dtype.
func TestRoundAllSameAsRoundFloat32(t *testing.T) {
	var v []float32
	for b := uint64(0); b <= math.MaxUint32; b += 977 {
		v = append(v, math.Float32frombits(uint32(b)))
	}
	for _, b := range []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffbfffff, 0x477fefff, 0x477ff000, 0x38800000, 0x387fffff, 0x3f808000, 0x3f818000} {
		v = append(v, math.Float32frombits(b))
	}
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		t.Run("dtype="+d.String(), func(t *testing.T) {
			got := append([]float32(nil), v...)
			roundAll(d, got)
			for i, x := range v {
				if want := d.RoundFloat32(x); math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("%#08x: %#08x, RoundFloat32 %#08x", math.Float32bits(x), math.Float32bits(got[i]), math.Float32bits(want))
				}
			}
		})
	}
}
