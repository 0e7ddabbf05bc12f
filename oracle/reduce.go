package oracle

import (
	"math"

	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/moe"
)

// mat is a dense row-major m×k matrix of enclosures, used as an operand of reduce: the
// reduction index runs along rows (contiguous) for both operands.
type mat struct {
	m, k int
	c, r []float64
}

func newMat(m, k int) mat { return mat{m, k, hugemem.Float64s(m * k), hugemem.Float64s(m * k)} }

// reduce encloses, for every (i, j), the stored value round_d(fl32(Σ_l A[i,l]·B[j,l] + bias[j]))
// of an fp32 reduction in unspecified order (any order, tensor cores allowed), and writes the
// enclosure to out(i, j) via set. bias may be nil.
//
// Bound (see docs/oracle.md §2): with C = Σ c_a·c_b (+b), M = Σ|c_a||c_b| (+|b|) and
// M⁺ = Σ(|c_a|+r_a)(|c_b|+r_b) (+|b|), the exact sum over the operands' enclosures differs
// from C by at most M⁺ − M; the fp32 accumulation adds at most gammaAcc(k+1)·M⁺; underflow
// adds at most (2k+2)·tiny; our float64 evaluation of C, M, M⁺ errs by at most
// (k+2)·2^-52·M⁺. Exactness criterion: when every operand is exactly known, all products and
// the bias are integer multiples of 2^q with q ≥ −126, and N < 2^(24+q), every partial sum
// in every order is a multiple of 2^q below 2^(24+q): representable in fp32, so the
// accumulation is exact (truncating tensor cores included) and the stored value is exactly
// round_d(C).
//
// Tensor cores align products by the sum of their operands' exponent fields, and a 16-bit
// subnormal (or zero) operand's field reads as the dtype's emin: the product aligns as if it
// had magnitude 2^emin·|b|, far above its value, and the block's other products are
// truncated relative to that (measured on an H200: docs/oracle.md §2.3). So for bf16 and fp16
// operands the accumulation term and the exactness criterion use the nominal magnitude
// N = Σ ν(|c_a|+r_a)·ν(|c_b|+r_b) (+|b|), ν(x) = max(x, 2^emin) (N ≥ M⁺), where fp32
// operands (CUDA cores, IEEE) use M⁺ and M.
func reduce(d moe.DType, A, B mat, bias []float64, set func(i, j int, c, r float64)) {
	reduceAcc(d, A, B, bias, true, false, nil, set)
}

// workspace holds reusable scratch buffers for reductions (not safe for concurrent use).
type workspace struct {
	bufs  [8][]float64
	ints  [2][]int
	bools [2][]bool
	flip  int
	zero  []float64 // all +0, never written: the radii of exact weight matrices
}

// zeros returns n zeros that no one may write (the radii of an exact matrix: reduceAcc and
// rowInfo only read a mat's radii), kept between calls instead of cleared for each.
func (w *workspace) zeros(n int) []float64 {
	if w == nil {
		return make([]float64, n)
	}
	if len(w.zero) < n {
		w.zero = make([]float64, n)
	}
	return w.zero[:n:n]
}

// rowBufs returns per-row scratch; two consecutive calls (operands A and B) get distinct
// buffers.
func (w *workspace) rowBufs(m int) ([]int, []bool) {
	if w == nil {
		return make([]int, m), make([]bool, m)
	}
	w.flip ^= 1
	if cap(w.ints[w.flip]) < m {
		w.ints[w.flip] = make([]int, m)
		w.bools[w.flip] = make([]bool, m)
	}
	return w.ints[w.flip][:m], w.bools[w.flip][:m]
}

func (w *workspace) get(slot, n int) []float64 {
	if w == nil {
		return make([]float64, n)
	}
	if cap(w.bufs[slot]) < n {
		w.bufs[slot] = hugemem.Float64s(n)
	}
	return w.bufs[slot][:n]
}

// reduceAcc is reduce with the fp32 accumulation error optionally left out (acc false: the
// mathematical mode of the semantics test, where only the operands' enclosures count),
// optionally with split-K partial sums reduced in the dtype (rpr: a contract's
// ReducedPrecisionReduction, d bf16 or fp16; see splitFactor), and scratch space from ws
// (nil: allocate).
func reduceAcc(d moe.DType, A, B mat, bias []float64, acc, rpr bool, ws *workspace, set func(i, j int, c, r float64)) {
	reduceAccB(d, A, B, nil, bias, acc, rpr, ws, set)
}

// opInfo is what reduceAcc derives of an operand before any product (rowInfoAbs): |c| of
// every element, per row the minimum trailing exponent and whether it is exact, and whether
// any |c| is below the nominal floor. Made once (newOpInfo), it is shared read-only by the
// parts of an expert's product that take the same B (parallel.go).
type opInfo struct {
	abs   []float64
	te    []int
	exact []bool
	below bool
}

// newOpInfo derives B's opInfo for dtype d, |c| into abs (len(B.c) elements).
func newOpInfo(d moe.DType, B mat, ws *workspace, abs []float64) *opInfo {
	te, ex := make([]int, B.m), make([]bool, B.m)
	t, e, below := rowInfoAbs(B, ws, abs, nominalFloor(d))
	copy(te, t)
	copy(ex, e)
	return &opInfo{abs: abs, te: te, exact: ex, below: below}
}

// reduceAccB is reduceAcc taking B's row information from bi (newOpInfo of this B, read
// only) instead of deriving it, where the product is not fused (nil: derive it): the same
// values, so the same bits.
func reduceAccB(d moe.DType, A, B mat, bi *opInfo, bias []float64, acc, rpr bool, ws *workspace, set func(i, j int, c, r float64)) {
	m, n, k := A.m, B.m, A.k
	if m == 0 || n == 0 {
		return
	}
	C := ws.get(0, m*n)
	M := ws.get(1, m*n)
	fl := nominalFloor(d)
	fused := m*n*k < 1<<15
	var teA, teB []int
	var exA, exB []bool
	var aAbs, bAbs []float64 // |c| of each operand (the products' path: rowInfoAbs)
	var belowA, belowB bool  // whether an element of aAbs, bAbs is below fl
	if fused {
		teA, exA = rowInfo(A, ws)
		teB, exB = rowInfo(B, ws)
	} else if bi != nil {
		aAbs = ws.get(3, len(A.c))
		teA, exA, belowA = rowInfoAbs(A, ws, aAbs, fl)
		bAbs, teB, exB, belowB = bi.abs, bi.te, bi.exact, bi.below
	} else {
		aAbs, bAbs = ws.get(3, len(A.c)), ws.get(5, len(B.c))
		teA, exA, belowA = rowInfoAbs(A, ws, aAbs, fl)
		teB, exB, belowB = rowInfoAbs(B, ws, bAbs, fl)
	}
	allExact := true
	for _, e := range exA {
		allExact = allExact && e
	}
	for _, e := range exB {
		allExact = allExact && e
	}
	// M⁺ and N are buffers of their own only where they may differ from M and M⁺: the
	// judgement loop below only reads them
	Mp, N := M, M
	if !(allExact && !fused) {
		Mp = ws.get(2, m*n)
		N = Mp // nominal magnitudes (fp32: M⁺ itself)
		if fl > 0 {
			N = ws.get(7, m*n)
		}
	}
	if fused && allExact && fl == 0 {
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
	} else if fused && allExact {
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
	} else if fused {
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
		aPlus, bPlus := aAbs, bAbs
		if !allExact {
			aPlus = plusInto(A, aAbs, ws.get(4, len(A.c)))
			bPlus = plusInto(B, bAbs, ws.get(6, len(B.c)))
		}
		// else radii all zero: |c|+r = |c| bitwise, so one array serves as both (|c| is
		// not read once M is computed, before ν may raise |c|+r in place below)
		mulNT(m, n, k, A.c, B.c, C)
		mulNT(m, n, k, aAbs, bAbs, M)
		if !allExact {
			mulNT(m, n, k, aPlus, bPlus, Mp)
		}
		// else radii all zero: |c|+r = |c| bitwise, so M⁺ is the same product as M (mulNT is
		// deterministic) and Mp is M itself; the stage-local checks' operands are all exact
		if fl > 0 {
			// ν in place of |c|+r: aPlus and bPlus are not needed any more. Where no
			// element is below the floor, ν is the identity and N is M⁺'s product, bitwise
			// (N is then Mp itself). With exact operands, rowInfoAbs has told whether any
			// element of |c| = |c|+r is below the floor: where none is, raiseToFloor would
			// change nothing and report false.
			ra, rb := belowA, belowB
			if !allExact || ra {
				ra = raiseToFloor(aPlus, fl)
			}
			if !allExact || rb {
				if bi != nil && allExact {
					bPlus = append(ws.get(6, len(bAbs))[:0], bAbs...) // bi's |c| is shared: raise a copy
				}
				rb = raiseToFloor(bPlus, fl)
			}
			if ra || rb {
				if allExact {
					N = ws.get(7, m*n)
				}
				mulNT(m, n, k, aPlus, bPlus, N)
			} else {
				N = Mp
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

// splitFactor returns the relative accumulation bound of a GEMM of reduction length k whose
// split-K partial sums may be reduced in the dtype d (contract.ReducedPrecisionReduction):
// |ŝ − Σ t| ≤ splitFactor·N (+ (2k·MinNormal_d + fp32's underflow term)·(1+u_d)^k for underflow
// or flush to zero, each absolute error carried through the later dtype roundings, which the
// caller adds), N the nominal magnitude Σ ν|a|·ν|b| (≥ Σ|t|); and grow = (1+u_d)^k.
//
// Derivation (docs/oracle.md §9.6): split the k products into s chunks (1 ≤ s ≤ k, unknown).
// Each chunk j is accumulated in fp32 with tensor cores, P̂_j = P_j + e_j with |e_j| ≤ g·N_j
// (g = gammaAcc(k+1) ≥ the chunk's own bound), so |P̂_j| ≤ (1+g)·N_j; rounded to the dtype,
// P̃_j = P̂_j(1+δ_j), |δ_j| ≤ u_d; the s partials added with a rounding after every add, in
// any order: |error| ≤ ((1+u_d)^{s−1} − 1)·Σ|P̃_j| (Higham §4.2, the product form, finite for
// every s). In all: g·N + u_d(1+g)·N + ((1+u_d)^{s−1} − 1)(1+u_d)(1+g)·N = ((1+g)(1+u_d)^s − 1)·N,
// increasing in s, so s = k bounds every split: (1+g)(1+u_d)^k − 1. The float64 evaluation
// of this factor is rounded up by 2⁻⁴⁰ (relative); s = 1 (no split) is docs/path.md's fp32
// accumulation followed by the output rounding, so the fp32-only enclosure lies inside.
func splitFactor(d moe.DType, k int, g float64) (factor, grow float64) {
	grow = math.Exp(float64(k)*math.Log1p(d.UnitRoundoff())) * (1 + 0x1p-40) // (1+u_d)^k, rounded up
	return ((1+g)*grow - 1) * (1 + 0x1p-40), grow
}

// nominalFloor returns 2^emin of the dtype whose operands tensor cores multiply (bf16, fp16),
// or 0 for fp32 (CUDA-core IEEE arithmetic: no nominal magnitudes).
func nominalFloor(d moe.DType) float64 {
	if d == moe.FP32 {
		return 0
	}
	return d.MinNormal()
}

// nominal returns ν(x) = max(x, floor) for x ≥ 0 (NaN stays NaN).
func nominal(x, floor float64) float64 {
	if x < floor {
		return floor
	}
	return x
}

// raiseToFloor replaces each element of plus below floor by ν(x) = floor and reports
// whether it replaced any (NaN stays NaN, as in nominal).
func raiseToFloor(plus []float64, floor float64) bool {
	raised := false
	for i, x := range plus {
		if x < floor {
			plus[i] = floor
			raised = true
		}
	}
	return raised
}

// rowInfo returns, per row, the minimum trailing exponent of its nonzero centers and whether
// every element of the row is exactly known (radius 0).
func rowInfo(A mat, ws *workspace) (te []int, exact []bool) {
	te, exact = ws.rowBufs(A.m)
	k := A.k
	for i := 0; i < A.m; i++ {
		t, ex := math.MaxInt32/4, true
		rr, cc := A.r[i*k:i*k+k], A.c[i*k:i*k+k]
		for l, r := range rr {
			if r != 0 {
				ex = false
				break
			}
			if c := cc[l]; c != 0 {
				if q := trailingExp(c); q < t {
					t = q
				}
			}
		}
		te[i], exact[i] = t, ex
	}
	return te, exact
}

// rowInfoAbs is rowInfo, with |c| of every element written to abs (absInto) in the same pass
// over the centers, and whether any element of abs is below floor (raiseToFloor's report on
// abs, without raising it). te of a row that is not exact is its minimum over the elements
// before its first nonzero radius, as rowInfo leaves it (reduceAcc reads te of exact rows
// only). Radii that are the workspace's read-only zeros (an exact weight matrix) are not
// scanned.
func rowInfoAbs(A mat, ws *workspace, abs []float64, floor float64) (te []int, exact []bool, below bool) {
	te, exact = ws.rowBufs(A.m)
	k := A.k
	zeroR := ws != nil && len(A.r) > 0 && len(ws.zero) > 0 && &A.r[0] == &ws.zero[0]
	for i := 0; i < A.m; i++ {
		t, ex := math.MaxInt32/4, true
		rr, cc, aa := A.r[i*k:i*k+k], A.c[i*k:i*k+k], abs[i*k:i*k+k]
		n := k // elements before the first nonzero radius
		if !zeroR {
			for l, r := range rr {
				if r != 0 {
					n, ex = l, false
					break
				}
			}
		}
		for l, c := range cc[:n] {
			a := math.Abs(c)
			aa[l] = a
			if a < floor {
				below = true
			}
			if c != 0 {
				if q := trailingExp(c); q < t {
					t = q
				}
			}
		}
		for l, c := range cc[n:] {
			a := math.Abs(c)
			aa[n+l] = a
			if a < floor {
				below = true
			}
		}
		te[i], exact[i] = t, ex
	}
	return te, exact, below
}

// plusInto returns |c|+r of a matrix given abs = |c| (absPlus's plus: NaN radius stays NaN).
func plusInto(A mat, abs, plus []float64) []float64 {
	for i, a := range abs {
		plus[i] = a + A.r[i]
	}
	return plus
}

// mulNT computes C = A·Bᵀ (A m×k, B n×k, C m×n, all row-major) in float64: plain loops for
// small products, dgemmNT otherwise (gonum's Dgemm, or OpenBLAS with the build tag openblas).
func mulNT(m, n, k int, A, B, C []float64) {
	if m*n*k < 1<<15 {
		for i := 0; i < m; i++ {
			a := A[i*k : i*k+k]
			for j := 0; j < n; j++ {
				b := B[j*k : j*k+k]
				s := 0.0
				for l, x := range a {
					s += x * b[l]
				}
				C[i*n+j] = s
			}
		}
		return
	}
	dgemmNT(m, n, k, A, B, C)
}

// pow2 is 2^n for n ≥ −1022 (+Inf above the float64 range).
func pow2(n int) float64 {
	if n > 1023 {
		return math.Inf(1)
	}
	return math.Float64frombits(uint64(1023+n) << 52)
}
