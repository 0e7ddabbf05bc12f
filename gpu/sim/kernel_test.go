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
