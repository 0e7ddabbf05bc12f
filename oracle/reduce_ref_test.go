package oracle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// The reference for TestReduceAccFastPath: reduceAcc as it was before rowInfoAbs (one pass
// for rowInfo, one for |c|, one for raiseToFloor over exact operands, and M⁺ and N copied
// rather than shared), kept verbatim so that the fast path is held to its bits.

// reduceAccRef is reduceAcc at 9754c07.
func reduceAccRef(d moe.DType, A, B mat, bias []float64, acc, rpr bool, ws *workspace, set func(i, j int, c, r float64)) {
	m, n, k := A.m, B.m, A.k
	if m == 0 || n == 0 {
		return
	}
	C := ws.get(0, m*n)
	M := ws.get(1, m*n)
	Mp := ws.get(2, m*n)
	fl := nominalFloor(d)
	N := Mp // nominal magnitudes (fp32: M⁺ itself)
	if fl > 0 {
		N = ws.get(7, m*n)
	}
	teA, exA := rowInfo(A, ws)
	teB, exB := rowInfo(B, ws)
	allExact := true
	for _, e := range exA {
		allExact = allExact && e
	}
	for _, e := range exB {
		allExact = allExact && e
	}
	if m*n*k < 1<<15 && allExact && fl == 0 {
		// fused, exact fp32 operands: M⁺ = M, no nominal magnitudes (N is M⁺)
		for i := 0; i < m; i++ {
			ac := A.c[i*k : i*k+k]
			for j := 0; j < n; j++ {
				bc := B.c[j*k : j*k+k]
				var c, mm float64
				for l, x := range ac {
					y := bc[l]
					c += x * y
					mm += math.Abs(x) * math.Abs(y)
				}
				C[i*n+j], M[i*n+j], Mp[i*n+j] = c, mm, mm
			}
		}
	} else if m*n*k < 1<<15 && allExact {
		// fused, exact operands: M⁺ = M
		for i := 0; i < m; i++ {
			ac := A.c[i*k : i*k+k]
			for j := 0; j < n; j++ {
				bc := B.c[j*k : j*k+k]
				var c, mm, nn float64
				for l, x := range ac {
					y := bc[l]
					c += x * y
					ax, ay := math.Abs(x), math.Abs(y)
					mm += ax * ay
					nn += nominal(ax, fl) * nominal(ay, fl)
				}
				C[i*n+j], M[i*n+j], Mp[i*n+j] = c, mm, mm
				if fl > 0 {
					N[i*n+j] = nn
				}
			}
		}
	} else if m*n*k < 1<<15 {
		// fused: C, M and M⁺ in one pass over each pair of rows
		for i := 0; i < m; i++ {
			ac, ar := A.c[i*k:i*k+k], A.r[i*k:i*k+k]
			for j := 0; j < n; j++ {
				bc, br := B.c[j*k:j*k+k], B.r[j*k:j*k+k]
				var c, mm, mp, nn float64
				for l, x := range ac {
					y := bc[l]
					c += x * y
					ax, ay := math.Abs(x), math.Abs(y)
					px, py := ax+ar[l], ay+br[l]
					mm += ax * ay
					mp += px * py
					nn += nominal(px, fl) * nominal(py, fl)
				}
				C[i*n+j], M[i*n+j], Mp[i*n+j] = c, mm, mp
				if fl > 0 {
					N[i*n+j] = nn
				}
			}
		}
	} else {
		var aAbs, aPlus, bAbs, bPlus []float64
		if allExact {
			// radii all zero: |c|+r = |c| bitwise, so one array serves as both (|c| is
			// not read once M is computed, before ν may raise |c|+r in place below)
			aAbs, bAbs = absIntoRef(A, ws.get(3, len(A.c))), absIntoRef(B, ws.get(5, len(B.c)))
			aPlus, bPlus = aAbs, bAbs
		} else {
			aAbs, aPlus = absPlusRef(A, ws.get(3, len(A.c)), ws.get(4, len(A.c)))
			bAbs, bPlus = absPlusRef(B, ws.get(5, len(B.c)), ws.get(6, len(B.c)))
		}
		mulNT(m, n, k, A.c, B.c, C)
		mulNT(m, n, k, aAbs, bAbs, M)
		if allExact {
			// radii all zero: |c|+r = |c| bitwise, so M⁺ is the same product as M (mulNT is
			// deterministic); the stage-local checks' operands are all exact
			copy(Mp, M)
		} else {
			mulNT(m, n, k, aPlus, bPlus, Mp)
		}
		if fl > 0 {
			// ν in place of |c|+r: aPlus and bPlus are not needed any more. Where no
			// element is below the floor, ν is the identity and N is M⁺'s product, bitwise.
			ra, rb := raiseToFloor(aPlus, fl), raiseToFloor(bPlus, fl)
			if ra || rb {
				mulNT(m, n, k, aPlus, bPlus, N)
			} else {
				copy(N, Mp)
			}
		}
	}
	g := gammaAcc(k + 1)
	f64err := float64(k+2) * 0x1p-52
	under := float64(2*k+2) * tiny
	if !acc {
		g, under, rpr = 0, 0, false
	}
	var split, splitUnder float64
	if rpr {
		var grow float64
		split, grow = splitFactor(d, k, g)
		// the underflow terms (fp32's and the dtype's: 2k·MinNormal_d for the partials'
		// roundings and adds) are themselves carried through up to k later dtype roundings
		splitUnder = (under + float64(2*k)*d.MinNormal()) * grow
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			c, mm, mp, nn := C[i*n+j], M[i*n+j], Mp[i*n+j], N[i*n+j]
			q := teA[i] + teB[j]
			if bias != nil {
				b := bias[j]
				c += b
				mm += math.Abs(b)
				mp += math.Abs(b)
				nn += math.Abs(b)
				if tb := trailingExp(b); tb < q {
					q = tb
				}
			}
			if fl == 0 {
				nn = mp // fp32 operands: IEEE products, no nominal magnitudes
			}
			if mm > math.MaxFloat32 || math.IsNaN(mm) {
				// a product or partial sum may overflow fp32 (Inf − Inf = NaN): unconstrained
				set(i, j, 0, math.NaN())
				continue
			}
			if exA[i] && exB[j] && (mm == 0 || (q >= -126 && q < 1<<20 && nn < pow2(24+q)) && (!rpr || representableSums(d, q, nn))) {
				// every partial sum is exactly representable in fp32 (multiples of 2^q,
				// below 2^(24+q) and below MaxFloat32), and in the dtype where partials may
				// be reduced there: no accumulation error
				set(i, j, c, 0)
				continue
			}
			if rpr {
				if nn*(1+split) > d.MaxFinite() || mp*(1+g) > math.MaxFloat32 || math.IsNaN(mp) || math.IsInf(split, 0) {
					set(i, j, 0, math.NaN()) // a partial sum in the dtype may overflow: unconstrained
					continue
				}
				set(i, j, c, (mp-mm)+split*nn+splitUnder+f64err*mp)
				continue
			}
			if mp*(1+g) > math.MaxFloat32 || math.IsNaN(mp) || math.IsInf(g, 0) {
				set(i, j, 0, math.NaN()) // the fp32 accumulation may overflow: unconstrained
				continue
			}
			r := (mp - mm) + g*nn + under + f64err*mp
			set(i, j, c, r)
		}
	}
}

// absPlusRef returns |c| and |c|+r of a matrix (NaN radius stays NaN in |c|+r).
func absPlusRef(A mat, abs, plus []float64) ([]float64, []float64) {
	for i, c := range A.c {
		a := math.Abs(c)
		abs[i] = a
		plus[i] = a + A.r[i]
	}
	return abs, plus
}

// absIntoRef returns |c| of a matrix.
func absIntoRef(A mat, abs []float64) []float64 {
	for i, c := range A.c {
		abs[i] = math.Abs(c)
	}
	return abs
}

// refCase is one random operand pair of TestReduceAccFastPath.
type refCase struct {
	name string
	A, B mat
}

// refOperand returns an m×k operand whose centers are dtype values of magnitudes over
// 2^±30 (so the trailing exponents and the exactness criterion vary), with zeros,
// subnormals of the dtype (where tiny, the other values are within 2^8 of the dtype's
// smallest normal, so that ν's floor changes the nominal magnitudes) and, where special, ±Inf and NaN; radii zero (exact), the given
// shared zeros (an exact weight matrix), or nonzero on some rows (inexact: a NaN radius
// too where special).
func refOperand(rng *rand.Rand, d moe.DType, m, k int, exact, special, tiny bool, zeros []float64) mat {
	A := mat{m, k, make([]float64, m*k), make([]float64, m*k)}
	if zeros != nil {
		A.r = zeros[:m*k]
	}
	for i := range A.c {
		var x float64
		switch u := rng.IntN(40); {
		case u == 0:
			x = 0
		case u == 1:
			x = math.Copysign(0, -1)
		case u == 2:
			x = d.MinNormal() * float64(rng.IntN(7)) / 8 // below the floor (a subnormal or zero)
		case u == 3 && special:
			x = []float64{math.Inf(1), math.Inf(-1), math.NaN()}[rng.IntN(3)]
		case u == 4:
			x = float64(rng.IntN(256)) // small integers: exact products
		case tiny:
			x = (2*rng.Float64() - 1) * d.MinNormal() * math.Ldexp(1, rng.IntN(8))
		default:
			x = (2*rng.Float64() - 1) * math.Ldexp(1, rng.IntN(61)-30)
		}
		A.c[i] = d.Round(x)
	}
	if !exact && zeros == nil {
		for i := 0; i < m; i++ {
			if rng.IntN(2) == 0 {
				continue
			}
			for l := rng.IntN(k); l < k; l++ {
				if rng.IntN(3) == 0 {
					A.r[i*k+l] = math.Abs(A.c[i*k+l]) * 0x1p-9
					if special && rng.IntN(50) == 0 {
						A.r[i*k+l] = math.NaN()
					}
				}
			}
		}
	}
	return A
}

// TestReduceAccFastPath: reduceAcc (rowInfoAbs, shared M⁺ and N) sets every element to the
// same bits as reduceAccRef, in the same order, over random operands of every dtype, both
// paths (fused loops and dgemm), exact operands (own zero radii, the workspace's shared
// zeros) and inexact ones, values below the dtype's floor, ±Inf and NaN, with and without
// bias, accumulation error and split-K reduction in the dtype; with a workspace reused
// across calls (so stale scratch would show) and without one.
func TestReduceAccFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 17))
	shapes := [][3]int{{3, 5, 7}, {17, 33, 65}, {40, 70, 130}, {1, 300, 200}, {130, 9, 64}}
	ws := &workspace{}
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		for _, sh := range shapes {
			for _, kind := range []string{"exact", "shared-zeros", "inexact", "mixed"} {
				for _, special := range []bool{false, true} {
					for _, tiny := range []bool{false, true} {
						for trial := 0; trial < 2; trial++ {
							m, n, k := sh[0], sh[1], sh[2]
							var A, B mat
							switch kind {
							case "exact":
								A, B = refOperand(rng, d, m, k, true, special, tiny, nil), refOperand(rng, d, n, k, true, special, tiny, nil)
							case "shared-zeros":
								A = refOperand(rng, d, m, k, true, special, tiny, nil)
								B = refOperand(rng, d, n, k, true, special, tiny, ws.zeros(n*k))
							case "inexact":
								A, B = refOperand(rng, d, m, k, false, special, tiny, nil), refOperand(rng, d, n, k, false, special, tiny, nil)
							case "mixed":
								A, B = refOperand(rng, d, m, k, false, special, tiny, nil), refOperand(rng, d, n, k, true, special, tiny, ws.zeros(n*k))
							}
							if trial == 1 && !special {
								// a row with no element below the floor in either operand: ν the identity
								for i := range A.c {
									if math.Abs(A.c[i]) < d.MinNormal() {
										A.c[i] = 1
									}
								}
								for i := range B.c {
									if math.Abs(B.c[i]) < d.MinNormal() {
										B.c[i] = 1
									}
								}
							}
							var bias []float64
							if trial == 1 {
								bias = refOperand(rng, d, 1, n, true, special, tiny, nil).c
							}
							for _, acc := range []bool{true, false} {
								for _, rpr := range []bool{false, true} {
									if rpr && d == moe.FP32 {
										continue
									}
									name := fmt.Sprintf("%v/%dx%dx%d/%s/special=%v/tiny=%v/trial=%d/acc=%v/rpr=%v", d, m, n, k, kind, special, tiny, trial, acc, rpr)
									for _, w := range []*workspace{ws, nil} {
										checkReduceAccBits(t, name, d, A, B, bias, acc, rpr, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// checkReduceAccBits runs reduceAcc and reduceAccRef on the same operands and reports the
// first element where their calls differ (index, center or radius bits, or count).
func checkReduceAccBits(t *testing.T, name string, d moe.DType, A, B mat, bias []float64, acc, rpr bool, ws *workspace) {
	t.Helper()
	type call struct {
		i, j int
		c, r float64
	}
	var got, want []call
	reduceAcc(d, A, B, bias, acc, rpr, ws, func(i, j int, c, r float64) { got = append(got, call{i, j, c, r}) })
	reduceAccRef(d, A, B, bias, acc, rpr, &workspace{}, func(i, j int, c, r float64) { want = append(want, call{i, j, c, r}) })
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements set, want %d", name, len(got), len(want))
	}
	for x := range got {
		g, w := got[x], want[x]
		if g.i != w.i || g.j != w.j || math.Float64bits(g.c) != math.Float64bits(w.c) || math.Float64bits(g.r) != math.Float64bits(w.r) {
			t.Fatalf("%s: element %d: got (%d,%d) %v±%v (%#x, %#x), want (%d,%d) %v±%v (%#x, %#x)", name, x,
				g.i, g.j, g.c, g.r, math.Float64bits(g.c), math.Float64bits(g.r), w.i, w.j, w.c, w.r, math.Float64bits(w.c), math.Float64bits(w.r))
		}
	}
}

// BenchmarkReduceAcc measures reduceAcc against reduceAccRef (the same bits: see
// TestReduceAccFastPath) on a stage check's per-expert products of a Qwen3-30B-A3B EP-8 rank
// (H 2048, I 768): exact bf16 operands, the path's rows (256 or 1,024 per expert) against an
// expert's weights with the workspace's shared zero radii, h1's shape (rows × 2I × H) and
// h2's (rows × H × I). Reported as output elements per second (each set is a no-op).
func BenchmarkReduceAcc(b *testing.B) {
	rng := rand.New(rand.NewPCG(14, 18))
	for _, sh := range [][3]int{{256, 1536, 2048}, {256, 2048, 768}, {1024, 1536, 2048}} {
		m, n, k := sh[0], sh[1], sh[2]
		ws := &workspace{}
		A := mat{m, k, make([]float64, m*k), make([]float64, m*k)}
		B := mat{n, k, make([]float64, n*k), ws.zeros(n * k)}
		for i := range A.c {
			A.c[i] = moe.BF16.Round(rng.NormFloat64())
		}
		for i := range B.c {
			B.c[i] = moe.BF16.Round(rng.NormFloat64() * 0.02)
		}
		for _, impl := range []struct {
			name string
			f    func(moe.DType, mat, mat, []float64, bool, bool, *workspace, func(i, j int, c, r float64))
		}{{"fast", reduceAcc}, {"ref", reduceAccRef}} {
			b.Run(fmt.Sprintf("m=%d/n=%d/k=%d/impl=%s", m, n, k, impl.name), func(b *testing.B) {
				for b.Loop() {
					impl.f(moe.BF16, A, B, nil, true, false, ws, func(int, int, float64, float64) {})
				}
				b.ReportMetric(float64(b.N)*float64(m*n)/b.Elapsed().Seconds(), "elements/s")
			})
		}
	}
}
