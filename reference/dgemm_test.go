package reference

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// TestDgemm runs under both builds (default: gonum; -tags openblas: OpenBLAS) and compares
// dgemm with naiveGemm (the definition, summed in order) for every transpose pair, beta 0
// and 1, leading dimensions larger than the rows, shapes not multiples of any block size and
// zero-sized ones, on two kinds of data:
//   - integers: every partial sum in every order is an integer below 2^53, so both are exact
//     and must agree bitwise;
//   - signed values over 2^±20: each result is a float64 evaluation of the same k+1 terms
//     (k products and beta·C) in some order, within γ_{k+1}·S of the exact value (Higham,
//     Accuracy and Stability §3.1, any order, fused multiply-adds included), S = Σ|terms|,
//     γ_n = n·u/(1 − n·u), u = 2⁻⁵³; so they differ by at most 2·γ_{k+1}·S. S is computed
//     in float64 (Ŝ ≥ (1 − γ_{k+1})·S), so the test uses 2·γ·Ŝ/(1 − γ), enlarged by 2⁻⁴⁰
//     relative for evaluating the bound itself.
//
// Output elements are NaN-poisoned for beta 0 (dgemm must write each of them) and the
// padding beyond n in each row of C must stay untouched.
func TestDgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 5))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {67, 129, 257}, {130, 70, 300}, {0, 5, 7}, {5, 0, 7}, {5, 7, 0}}
	trans := []blas.Transpose{blas.NoTrans, blas.Trans}
	for _, data := range []string{"integers", "signed"} {
		val := func() float64 {
			if data == "integers" {
				return float64(rng.IntN(33) - 16)
			}
			return (2*rng.Float64() - 1) * math.Ldexp(1, rng.IntN(41)-20)
		}
		for _, sh := range shapes {
			for _, tA := range trans {
				for _, tB := range trans {
					for _, beta := range []float64{0, 1} {
						m, n, k := sh[0], sh[1], sh[2]
						name := fmt.Sprintf("%s/m%d_n%d_k%d/%c%c/beta%g", data, m, n, k, tA, tB, beta)
						t.Run(name, func(t *testing.T) {
							ra, ca := m, k
							if tA == blas.Trans {
								ra, ca = k, m
							}
							rb, cb := k, n
							if tB == blas.Trans {
								rb, cb = n, k
							}
							lda, ldb, ldc := ca+3, cb+1, n+2
							a, b := make([]float64, max(ra*lda, 1)), make([]float64, max(rb*ldb, 1))
							for i := range a {
								a[i] = val()
							}
							for i := range b {
								b[i] = val()
							}
							c0 := make([]float64, m*ldc)
							for i := range c0 {
								c0[i] = val()
								if beta == 0 && i%ldc < n {
									c0[i] = math.NaN()
								}
							}
							want := append([]float64(nil), c0...)
							naiveGemm(tA, tB, 0, m, n, k, a, lda, b, ldb, beta, want, ldc)
							abs := func(v []float64) []float64 {
								w := make([]float64, len(v))
								for i, x := range v {
									w[i] = math.Abs(x)
								}
								return w
							}
							S := abs(c0)
							if beta == 0 {
								clear(S)
							}
							naiveGemm(tA, tB, 0, m, n, k, abs(a), lda, abs(b), ldb, beta, S, ldc)
							got := append([]float64(nil), c0...)
							dgemm(tA, tB, m, n, k, a, lda, b, ldb, beta, got, ldc)
							g := float64(k+1) * 0x1p-53 / (1 - float64(k+1)*0x1p-53)
							for i := range got {
								if i%ldc >= n {
									if math.Float64bits(got[i]) != math.Float64bits(c0[i]) {
										t.Fatalf("padding element %d changed: %v, was %v", i, got[i], c0[i])
									}
									continue
								}
								bound := 2 * g * S[i] / (1 - g) * (1 + 0x1p-40)
								if data == "integers" {
									bound = 0
								}
								if d := math.Abs(got[i] - want[i]); !(d <= bound) {
									t.Fatalf("element (%d, %d): dgemm %v, loop %v, difference %g above the bound %g", i/ldc, i%ldc, got[i], want[i], d, bound)
								}
							}
						})
					}
				}
			}
		}
	}
}
