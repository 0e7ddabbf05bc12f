package oracle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// The tests of dgemmNT run under both builds (default: gonum; -tags openblas: OpenBLAS) and
// hold each implementation to what reduceAcc assumes of it: a float64 evaluation of A·Bᵀ in
// some summation order, NaN and Inf propagated as in IEEE arithmetic, and the same bits for
// the same operands whatever goroutine calls it.

// dgemmShapes are the shapes the tests run: m, n, k not multiples of any block size (gonum
// blocks by 64, OpenBLAS kernels by 4, 8, 16, ... and its k panels by hundreds), ones,
// zero-sized dimensions, and products large enough for mulNT to hand them to dgemmNT.
var dgemmShapes = [][3]int{
	{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {67, 129, 257}, {1, 200, 1001}, {200, 1, 999}, {130, 70, 300},
	{0, 5, 7}, {5, 0, 7}, {5, 7, 0}, {0, 0, 0},
}

// naiveNT is A·Bᵀ by the definition, summing over l in order from +0.
func naiveNT(m, n, k int, A, B []float64) []float64 {
	C := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for l := 0; l < k; l++ {
				s += A[i*k+l] * B[j*k+l]
			}
			C[i*n+j] = s
		}
	}
	return C
}

// nanFilled returns n NaNs: an output element dgemmNT does not write stays NaN.
func nanFilled(n int) []float64 {
	C := make([]float64, n)
	for i := range C {
		C[i] = math.NaN()
	}
	return C
}

// TestDgemmNT: on random signed operands with magnitudes over 2^±20 (so the summation order
// matters), dgemmNT and the in-order loop agree within the derived bound, element by
// element. Bound: each is a float64 evaluation of the same sum of k products in some order
// (with or without fused multiply-adds), so each is within γ_k·S of the exact value (Higham,
// Accuracy and Stability, §3.1, any order), γ_k = k·u/(1 − k·u), u = 2⁻⁵³, S = Σ|a_l||b_l|
// exact; hence they differ by at most 2·γ_k·S. The test computes S in float64 (Ŝ ≥ (1 − γ_k)·S,
// all terms non-negative), so uses 2·γ_k·Ŝ/(1 − γ_k), enlarged by 2⁻⁴⁰ relative for the
// few roundings of evaluating the bound itself.
func TestDgemmNT(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	val := func() float64 {
		return (2*rng.Float64() - 1) * math.Ldexp(1, rng.IntN(41)-20)
	}
	for _, sh := range dgemmShapes {
		m, n, k := sh[0], sh[1], sh[2]
		t.Run(fmt.Sprintf("random/m%d_n%d_k%d", m, n, k), func(t *testing.T) {
			A, B := make([]float64, m*k), make([]float64, n*k)
			for i := range A {
				A[i] = val()
			}
			for i := range B {
				B[i] = val()
			}
			absA, absB := make([]float64, m*k), make([]float64, n*k)
			for i, x := range A {
				absA[i] = math.Abs(x)
			}
			for i, x := range B {
				absB[i] = math.Abs(x)
			}
			want, S := naiveNT(m, n, k, A, B), naiveNT(m, n, k, absA, absB)
			got := nanFilled(m * n)
			dgemmNT(m, n, k, A, B, got)
			u := 0x1p-53
			g := float64(k) * u / (1 - float64(k)*u)
			worst := 0.0
			for i := range got {
				bound := 2 * g * S[i] / (1 - g) * (1 + 0x1p-40)
				d := math.Abs(got[i] - want[i])
				if !(d <= bound) {
					t.Fatalf("element %d (row %d, col %d): dgemmNT %g, loop %g, difference %g above the bound %g", i, i/n, i%n, got[i], want[i], d, bound)
				}
				if bound > 0 {
					worst = max(worst, d/bound)
				}
			}
			t.Logf("worst difference / bound: %.3g", worst)
		})
	}
}

// TestDgemmNTExact: with small-integer operands every partial sum in every order is an
// integer below 2^53, so every evaluation is exact: dgemmNT must equal the loop bitwise
// (this catches a wrong transpose, a wrong leading dimension or an unwritten element, which
// the bound of TestDgemmNT would also catch, without any tolerance at all).
func TestDgemmNTExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	for _, sh := range dgemmShapes {
		m, n, k := sh[0], sh[1], sh[2]
		t.Run(fmt.Sprintf("integers/m%d_n%d_k%d", m, n, k), func(t *testing.T) {
			A, B := make([]float64, m*k), make([]float64, n*k)
			for i := range A {
				A[i] = float64(rng.IntN(33) - 16)
			}
			for i := range B {
				B[i] = float64(rng.IntN(33) - 16)
			}
			want := naiveNT(m, n, k, A, B)
			got := nanFilled(m * n)
			dgemmNT(m, n, k, A, B, got)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("element %d (row %d, col %d): dgemmNT %v, loop %v", i, i/n, i%n, got[i], want[i])
				}
			}
		})
	}
}

// TestDgemmNTNonFinite: reduceAcc takes an element whose magnitude M is NaN or above the
// fp32 range as unconstrained, and M comes from dgemmNT on non-negative operands (|c|, |c|+r,
// where a NaN radius marks an unconstrained input). For non-negative terms the class of the
// sum does not depend on the order: NaN if any product is NaN (NaN operand, or 0·Inf),
// else +Inf if any is +Inf, else finite. dgemmNT must give the loop's class: a BLAS that
// skipped zero multipliers or dropped NaNs would turn an unconstrained element into a
// constrained one.
func TestDgemmNTNonFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 3))
	class := func(x float64) string {
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "+Inf"
		case math.IsInf(x, -1):
			return "-Inf"
		}
		return "finite"
	}
	for _, sh := range dgemmShapes {
		m, n, k := sh[0], sh[1], sh[2]
		t.Run(fmt.Sprintf("nonnegative/m%d_n%d_k%d", m, n, k), func(t *testing.T) {
			fill := func(v []float64) {
				for i := range v {
					switch r := rng.IntN(1000); {
					case r == 0:
						v[i] = math.NaN()
					case r == 1:
						v[i] = math.Inf(1)
					case r < 300:
						v[i] = 0
					default:
						v[i] = rng.Float64()
					}
				}
			}
			A, B := make([]float64, m*k), make([]float64, n*k)
			fill(A)
			fill(B)
			want := naiveNT(m, n, k, A, B)
			got := nanFilled(m * n)
			dgemmNT(m, n, k, A, B, got)
			seen := map[string]int{}
			for i := range got {
				if class(got[i]) != class(want[i]) {
					t.Fatalf("element %d (row %d, col %d): dgemmNT %v, loop %v", i, i/n, i%n, got[i], want[i])
				}
				seen[class(want[i])]++
			}
			t.Logf("classes: %v", seen)
		})
	}
}

// TestDgemmNTConcurrent: the oracle's expert workers call dgemmNT from several goroutines at
// once, and parallel.go promises the same bits on one goroutine or many: concurrent calls
// on the same operands must each give the serial call's result bitwise. The shape is above
// OpenBLAS's threshold for using its thread pool (m·n·k ≥ 2^18), whose use changes the bits
// (see internal/f64gemm), so calls that contend for the pool are covered.
func TestDgemmNTConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 4))
	m, n, k := 255, 257, 513
	A, B := make([]float64, m*k), make([]float64, n*k)
	for i := range A {
		A[i] = rng.NormFloat64()
	}
	for i := range B {
		B[i] = rng.NormFloat64()
	}
	want := nanFilled(m * n)
	dgemmNT(m, n, k, A, B, want)
	const workers = 8
	got := make([][]float64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		got[w] = nanFilled(m * n)
		wg.Go(func() {
			for range 4 {
				dgemmNT(m, n, k, A, B, got[w])
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for i := range want {
			if math.Float64bits(got[w][i]) != math.Float64bits(want[i]) {
				t.Fatalf("worker %d, element %d: %v, serial call %v", w, i, got[w][i], want[i])
			}
		}
	}
}

// BenchmarkDgemmNT measures dgemmNT alone (gonum, or OpenBLAS with -tags openblas) on
// per-expert product shapes of a Qwen3-30B-A3B EP-8 rank (H 2048, I 768, ~1,024 rows per
// expert at 16,384 tokens): the gate/up GEMM (rows × 2I × H), the down GEMM (rows × H × I)
// and the weight gradient (2I × H × rows). Reported as GMAC/s (m·n·k multiply-adds).
func BenchmarkDgemmNT(b *testing.B) {
	rng := rand.New(rand.NewPCG(14, 6))
	for _, sh := range [][3]int{{1024, 1536, 2048}, {1024, 2048, 768}, {1536, 2048, 1024}} {
		m, n, k := sh[0], sh[1], sh[2]
		b.Run(fmt.Sprintf("m=%d/n=%d/k=%d", m, n, k), func(b *testing.B) {
			A, B, C := make([]float64, m*k), make([]float64, n*k), make([]float64, m*n)
			for i := range A {
				A[i] = rng.NormFloat64()
			}
			for i := range B {
				B[i] = rng.NormFloat64()
			}
			for b.Loop() {
				dgemmNT(m, n, k, A, B, C)
			}
			b.ReportMetric(float64(b.N)*float64(m)*float64(n)*float64(k)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
