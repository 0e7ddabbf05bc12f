package oracle

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// Enclosure holds, for every tensor the path stores, an enclosure of the value any path that
// conforms to docs/path.md stores there. Stage tensors are in sorted-row order.
type Enclosure struct {
	Plan *moe.Plan
	// Contract is the contract the enclosure was derived under.
	Contract contract.Contract

	// Stages (sorted rows).
	Xs, H1, Act, H2, O, DO, DRWSorted, DH2, DAct, DH1, DXs ivec
	// Outputs in the case's layout (DRW in slot order).
	Y, DX, DW1, DB1, DW2, DB2, DRW ivec
}

// encl is the enclosure computation's context for one case.
type encl struct {
	c       *moe.Case
	d       moe.DType
	p       *moe.Plan
	S, T    int
	H, I    int
	E, K, R int
	w1s     [][]float64 // per expert, 2I×H: row j = GEMM 1 output column j
	w2s     [][]float64 // per expert, H×I: row h = GEMM 2 output column h
	tok     []int       // sorted row → token
	// noRound turns every storage rounding into the identity (mathematical mode, for the
	// test that checks the enclosure's semantics against the float64 reference).
	noRound bool
	// tailMemo lets drwRows reuse one tail row's enclosure for the others (stage-local
	// checks; off for Checker.fullTails); tailHits counts its reuses (tests), nil: none.
	tailMemo bool
	tailHits *atomic.Int64
	// ct is the contract whose rounding freedoms the enclosure admits (zero: exact).
	ct contract.Contract
	ws *workspace
	ar *arena
	// sp splits the stages over experts and rows (parallel.go); pool keeps the expert
	// workers' scratch (nil: fresh scratch per call).
	sp   par.Split
	pool *scratchPool
	// ops is the operands the parts of a stage's split experts share (parallel.go), nil
	// outside a stage-local GEMM or weight-gradient comparison.
	ops *expertOps
	// stop, when closed, makes the remaining experts and ranges do nothing (the caller
	// then reports ErrStopped instead of the incomplete result).
	stop <-chan struct{}
}

// arena hands out float64 slices from large slabs, so a check allocates a few slabs instead
// of hundreds of vectors; reset makes the space reusable for the next case.
type arena struct {
	slabs [][]float64
	cur   int // slab in use
	off   int // next free element in it
}

func (a *arena) get(n int) []float64 {
	v := a.getDirty(n)
	clear(v)
	return v
}

// getDirty is get without the clearing, for a caller that writes every element.
func (a *arena) getDirty(n int) []float64 {
	if a == nil {
		return make([]float64, n)
	}
	for a.cur < len(a.slabs) {
		s := a.slabs[a.cur]
		if a.off+n <= len(s) {
			v := s[a.off : a.off+n : a.off+n]
			a.off += n
			return v
		}
		a.cur++
		a.off = 0
	}
	size := max(n, 1<<16)
	a.slabs = append(a.slabs, hugemem.Float64s(size))
	a.cur, a.off = len(a.slabs)-1, n
	return a.slabs[a.cur][:n:n]
}

func (a *arena) reset() {
	if a != nil {
		a.cur, a.off = 0, 0
	}
}

func (en *encl) newIvec(n int) ivec { return ivec{c: en.ar.get(n), r: en.ar.get(n)} }

func (en *encl) newMat(m, k int) mat { return mat{m, k, en.ar.get(m * k), en.ar.get(m * k)} }

// newMatDirty is newMat for a matrix its caller writes whole (arena.getDirty).
func (en *encl) newMatDirty(m, k int) mat {
	return mat{m, k, en.ar.getDirty(m * k), en.ar.getDirty(m * k)}
}

// arith is the elementwise arithmetic of this enclosure (mathematical mode keeps centers).
func (en *encl) arith() arith { return arith{math: en.noRound} }

// round encloses the storage rounding (roundInto), or nothing in mathematical mode.
func (en *encl) round(c, r float64) (float64, float64) {
	if en.noRound {
		return c, r
	}
	return roundInto(en.d, c, r)
}

func newEncl(c *moe.Case, p *moe.Plan) *encl { return newEnclIn(c, p, nil, &workspace{}, nil) }

// newEnclIn builds the context with scratch from ar, ws and pool (any may be nil), split
// over every core (par.New's default).
func newEnclIn(c *moe.Case, p *moe.Plan, ar *arena, ws *workspace, pool *scratchPool) *encl {
	en := &encl{c: c, d: c.DType, p: p, S: c.S(), T: c.T, H: c.H, I: c.I, E: c.E, K: c.K, R: p.Rows, ws: ws, ar: ar,
		sp: par.New(0, 0), pool: pool}
	en.w1s = make([][]float64, c.E)
	en.w2s = make([][]float64, c.E)
	if c.Layout == moe.Standard {
		// the case's own memory already holds each expert's matrices in these layouts
		n1, n2 := 2*c.I*c.H, c.H*c.I
		for e := 0; e < c.E; e++ {
			en.w1s[e], en.w2s[e] = c.W1[e*n1:(e+1)*n1:(e+1)*n1], c.W2[e*n2:(e+1)*n2:(e+1)*n2]
		}
		return en.withTokens()
	}
	for e := 0; e < c.E; e++ {
		en.w1s[e], en.w2s[e] = en.ar.get(2*c.I*c.H), en.ar.get(c.H*c.I)
	}
	en.forRows(c.E, 3*c.I*c.H, func(lo, hi int) {
		for e := lo; e < hi; e++ {
			w1, w2 := en.w1s[e], en.w2s[e]
			for j := 0; j < 2*c.I; j++ {
				for h := 0; h < c.H; h++ {
					w1[j*c.H+h] = c.W1[c.W1Index(e, j, h)]
				}
			}
			for h := 0; h < c.H; h++ {
				for j := 0; j < c.I; j++ {
					w2[h*c.I+j] = c.W2[c.W2Index(e, h, j)]
				}
			}
		}
	})
	return en.withTokens()
}

// withTokens sets en.tok (sorted row → token) and returns en.
func (en *encl) withTokens() *encl {
	en.tok = make([]int, en.S)
	for i, s := range en.p.Perm {
		en.tok[i] = int(s) / en.K
	}
	return en
}

// Enclose computes the end-to-end enclosure of every tensor of the path for case c under
// the exact contract (docs/path.md as written).
func Enclose(c *moe.Case) (*Enclosure, error) { return enclose(c, false) }

// EncloseUnder computes the end-to-end enclosure of every tensor for case c under contract
// ct: it contains the value any path conforming to ct stores there.
func EncloseUnder(c *moe.Case, ct contract.Contract) (*Enclosure, error) {
	return encloseUnder(c, false, ct)
}

// enclose, with math set, evaluates the path's formulas in plain float64 (no storage
// rounding; inputs carry a negligible radius so no fp32 exact tracking applies): the centers
// are then the mathematical function, comparable with the float64 reference.
func enclose(c *moe.Case, mathematical bool) (*Enclosure, error) {
	return encloseUnder(c, mathematical, contract.Contract{})
}

func encloseUnder(c *moe.Case, mathematical bool, ct contract.Contract) (*Enclosure, error) {
	return encloseSplit(c, mathematical, ct, par.New(0, 0))
}

// encloseSplit is encloseUnder with its loops split as sp says (the result is the same for
// every split; the tests compare).
func encloseSplit(c *moe.Case, mathematical bool, ct contract.Contract, sp par.Split) (*Enclosure, error) {
	return encloseStop(c, mathematical, ct, sp, nil)
}

// encloseStop is encloseSplit that stops (ErrStopped) once stop is closed.
func encloseStop(c *moe.Case, mathematical bool, ct contract.Contract, sp par.Split, stop <-chan struct{}) (*Enclosure, error) {
	return encloseIn(c, mathematical, ct, nil, &workspace{}, true, sp, stop)
}

// encloseIn is encloseStop with scratch from ar and ws (ar may be nil: plain allocations;
// with an arena the result lives in it and is valid until its next reset). Without wgrad the
// weight- and bias-gradient enclosures (DW1, DB1, DW2, DB2) are not derived and left empty:
// nothing else depends on them (a caller that compares no weight gradient within a bound).
func encloseIn(c *moe.Case, mathematical bool, ct contract.Contract, ar *arena, ws *workspace, wgrad bool, sp par.Split, stop <-chan struct{}) (*Enclosure, error) {
	return encloseNeed(c, mathematical, ct, ar, ws, wgradNeed{w: wgrad, b: wgrad}, sp, stop)
}

// encloseNeed is encloseIn deriving the weight gradients (dW1, dW2) and the bias gradients
// (dB1, dB2) only where need asks for them (splitencl.go's wgradOf).
func encloseNeed(c *moe.Case, mathematical bool, ct contract.Contract, ar *arena, ws *workspace, need wgradNeed, sp par.Split, stop <-chan struct{}) (*Enclosure, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	return encloseValid(c, mathematical, ct, ar, ws, need, sp, stop)
}

// encloseValid is encloseNeed for a case its caller has validated (c.Validate(moe.Limits{})
// returned nil, and c has not changed since).
func encloseValid(c *moe.Case, mathematical bool, ct contract.Contract, ar *arena, ws *workspace, need wgradNeed, sp par.Split, stop <-chan struct{}) (*Enclosure, error) {
	p, err := c.Plan()
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	en := newEnclIn(c, p, ar, ws, nil)
	en.sp, en.stop = sp, stop
	en.noRound = mathematical
	en.ct = ct
	out := &Enclosure{Plan: p, Contract: ct}
	out.Xs = en.gather(c.X, true)
	out.H1 = en.gemm1(ivsrc(out.Xs))
	out.Act = en.activation(ivsrc(out.H1))
	out.H2 = en.gemm2(ivsrc(out.Act))
	out.O = en.weight(ivsrc(out.H2))
	out.Y = en.combine(ivsrc(out.O))
	out.DO = en.gather(c.DY, false)
	out.DRWSorted = en.drw(ivsrc(out.DO), ivsrc(out.H2))
	out.DH2 = en.dh2(ivsrc(out.DO))
	out.DAct = en.dgrad2(ivsrc(out.DH2))
	out.DW2, out.DB2 = en.wgradOf(need, ivsrc(out.DH2), ivsrc(out.Act), en.H, en.I, en.c.LenW2(), en.c.W2Index)
	out.DH1 = en.actBackward(ivsrc(out.H1), ivsrc(out.DAct))
	out.DXs = en.dgrad1(ivsrc(out.DH1))
	out.DW1, out.DB1 = en.wgradOf(need, ivsrc(out.DH1), ivsrc(out.Xs), 2*en.I, en.H, en.c.LenW1(), en.c.W1Index)
	out.DX = en.scatter(ivsrc(out.DXs))
	out.DRW = en.unsort(out.DRWSorted)
	if stopped(stop) {
		return nil, fmt.Errorf("oracle: %w", ErrStopped)
	}
	return out, nil
}

func (en *encl) rowsOf(e int) (int, int) { return en.p.Begin(e), en.p.End(e) }

// gather: xs[i] = x[tok(i)] for all rows; mask A zeroes the tail when mask is set
// (forward); the dY gather (backward step 10) is not masked.
func (en *encl) gather(x []float64, mask bool) ivec {
	H := en.H
	v := en.newIvec(en.S * H)
	en.forRows(en.S, H, func(lo, hi int) { en.gatherRows(x, mask, v, lo, hi, 0) })
	return v
}

// gatherRows is gather on rows [lo, hi), written to v from row off on (all row kernels
// below write row i at i − off: off 0 for a whole stage, lo for a span of it).
func (en *encl) gatherRows(x []float64, mask bool, v ivec, lo, hi, off int) {
	H := en.H
	for i := lo; i < hi; i++ {
		if mask && i >= en.R {
			continue // zero, exactly
		}
		t := en.tok[i]
		o := (i - off) * H
		for h := 0; h < H; h++ {
			x := x[t*H+h]
			v.c[o+h] = x
			if en.noRound {
				v.r[o+h] = 0x1p-1000
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				v.setUnknown(o + h)
			}
		}
	}
}

// rowsMat copies rows [b, e) of a row-major ivec with row length n into a mat.
func rowsMat(v ivec, b, e, n int) mat {
	return mat{e - b, n, v.c[b*n : e*n], v.r[b*n : e*n]}
}

// colsMat copies rows [b, e) of v (row length n) transposed: an n×(e−b) mat.
//
// It copies in blocks of 256 rows × 8 columns, column by column within a block: each column
// of the result is then written in runs of up to 256 consecutive elements, and the block's
// reads (8 values of each of 256 rows) stay in the first-level cache for the next columns.
// Element by element over whole rows (a weight gradient's operands per expert: rows × 2,048
// at a real layer), every write went to another cache line of the result, a stride of e−b
// elements apart in each of two arrays: 65 ns an element at 1,024 rows, 8 ns in blocks
// (BenchmarkColsMat, on the 2-core development machine).
func (en *encl) colsMat(v rowsrc, b, e, n int) mat { return en.colsMatRange(v, b, e, n, 0, n) }

// colsMatRange is colsMat of columns [c0, c1) of v only: a (c1−c0)×(e−b) mat.
func (en *encl) colsMatRange(v rowsrc, b, e, n, c0, c1 int) mat {
	m := en.newMatDirty(c1-c0, e-b) // every element written below
	const ti, tj = 256, 8           // rows, columns of a block
	for i0 := b; i0 < e; i0 += ti {
		i1 := min(i0+ti, e)
		for j0 := c0; j0 < c1; j0 += tj {
			j1 := min(j0+tj, c1)
			for j := j0; j < j1; j++ {
				for i := i0; i < i1; i++ {
					x := v.at(i*n + j)
					m.c[(j-c0)*(e-b)+i-b] = x.v
					m.r[(j-c0)*(e-b)+i-b] = x.e
				}
			}
		}
	}
	return m
}

func exactMat(x []float64, m, k int) mat { return mat{m, k, x, make([]float64, len(x))} }

func (en *encl) weightMat(x []float64, m, k int) mat {
	if !en.noRound {
		return mat{m, k, x, en.ws.zeros(len(x))} // radii zero, read only
	}
	w := mat{m, k, x, en.ar.get(len(x))}
	for i := range w.r {
		w.r[i] = 0x1p-1000
	}
	return w
}

// transposeExact returns the k×m transpose of a row-major m×k exact matrix.
//
// It copies in blocks of 64 rows × 8 columns of x, a row of the transpose at a time within a
// block: each write is a run of up to 64 consecutive elements, and the block's reads (8
// values of each of 64 rows) stay in the first-level cache for the next row. A column of
// the transpose is a stride of m elements: a real layer's weights, m·k ≈ 3·10^6 per expert,
// missed the cache on every element element by element; tiles of 32×32 written a column at a
// time took 12 ns an element, these blocks 3–5 (BenchmarkTransposeExact, on the 2-core
// development machine). It writes every center; the radii are the workspace's read-only
// zeros.
func (en *encl) transposeExact(x []float64, m, k int) mat {
	t := mat{k, m, en.ar.getDirty(k * m), en.ws.zeros(k * m)}
	const ti, tl = 64, 8 // rows, columns of x in a block
	for i0 := 0; i0 < m; i0 += ti {
		i1 := min(i0+ti, m)
		for l0 := 0; l0 < k; l0 += tl {
			l1 := min(l0+tl, k)
			for l := l0; l < l1; l++ {
				col := t.c[l*m+i0 : l*m+i1]
				for di := range col {
					col[di] = x[(i0+di)*k+l]
				}
			}
		}
	}
	return t
}

// gemmRows encloses out rows [b, e) = round_d(A_rows · Wᵀ + bias) and leaves the other
// rows as set by the caller.
//
// Under a contract with GEMMBias InDtype the bias is added after the GEMM's rounding and the
// sum rounded again (round_d(round_d(acc) + b)); with Either, the hull of both. With TF32,
// fp32 operands may be rounded to TF32 first.
func (en *encl) gemmRows(out ivec, n int, A mat, W mat, bias []float64, b int) {
	en.gemmRowsB(out, n, A, en.operand(W), nil, bias, b)
}

// gemmRowsB is gemmRows for weights W already made a GEMM operand (en.operand) and, when bi
// is not nil, their row information (newOpInfo): shared by the parts of an expert.
func (en *encl) gemmRowsB(out ivec, n int, A mat, W mat, bi *opInfo, bias []float64, b int) {
	A = en.operand(A)
	how := en.ct.GEMMBias
	if bias == nil || how == contract.AsPath || how == contract.InFP32 || en.noRound {
		reduceAccB(en.d, A, W, bi, bias, !en.noRound, en.rpr(), en.ws, func(i, j int, c, r float64) {
			out.c[(b+i)*n+j], out.r[(b+i)*n+j] = en.round(c, r)
		})
		return
	}
	after := func(i, j int, c, r float64) rv {
		c, r = en.round(c, r)
		x := en.arith().add(rv{c, r}, exactRV(bias[j]))
		c, r = en.round(x.v, x.e)
		return rv{c, r}
	}
	if how == contract.InDtype {
		reduceAccB(en.d, A, W, bi, nil, true, en.rpr(), en.ws, func(i, j int, c, r float64) {
			x := after(i, j, c, r)
			out.c[(b+i)*n+j], out.r[(b+i)*n+j] = x.v, x.e
		})
		return
	}
	reduceAccB(en.d, A, W, bi, bias, true, en.rpr(), en.ws, func(i, j int, c, r float64) {
		out.c[(b+i)*n+j], out.r[(b+i)*n+j] = en.round(c, r)
	})
	reduceAccB(en.d, A, W, bi, nil, true, en.rpr(), en.ws, func(i, j int, c, r float64) {
		k := (b+i)*n + j
		x := hullRV(rv{out.c[k], out.r[k]}, after(i, j, c, r))
		out.c[k], out.r[k] = x.v, x.e
	})
}

// rpr reports whether this case's GEMMs (GEMM 1 and 2, their dgrads and wgrads; not the
// routing-weight gradient's or the bias gradients' sums) may reduce split-K partial sums in
// the dtype under the contract (contract.ReducedPrecisionReduction, reduce.go's splitFactor).
func (en *encl) rpr() bool {
	r := en.ct.ReducedPrecisionReduction
	return !en.noRound && (en.d == moe.BF16 && r.BF16 || en.d == moe.FP16 && r.FP16)
}

// operand returns a GEMM operand, widened for TF32 when the contract allows it on fp32 data.
func (en *encl) operand(m mat) mat {
	if en.ct.TF32 && en.d == moe.FP32 && !en.noRound {
		return tf32Widen(m)
	}
	return m
}

func (en *encl) bias1(e int) []float64 {
	if !en.c.Bias {
		return nil
	}
	return en.c.B1[e*2*en.I : (e+1)*2*en.I]
}

// bias1Of and bias2Of are bias1 and bias2 as functions, nil without biases.
func (en *encl) bias1Of() func(int) []float64 {
	if !en.c.Bias {
		return nil
	}
	return en.bias1
}

func (en *encl) bias2Of() func(int) []float64 {
	if !en.c.Bias {
		return nil
	}
	return en.bias2
}

func (en *encl) bias2(e int) []float64 {
	if !en.c.Bias {
		return nil
	}
	return en.c.B2[e*en.H : (e+1)*en.H]
}

// gemm1: rows < R computed; tail zero (mask B).
func (en *encl) gemm1(xs rowsrc) ivec {
	n := 2 * en.I
	out := en.newIvec(en.S * n)
	en.forExperts(false, en.R*n*en.H, func(x *encl, e int) {
		b, end := x.rowsOf(e)
		x.gemmRows(out, n, xs.rows(x, b, end, x.H), x.weightMat(x.w1s[e], n, x.H), x.bias1(e), b)
	})
	return out
}

// activation: all rows, fp32 elementwise, stored rounded.
func (en *encl) activation(h1 rowsrc) ivec {
	I := en.I
	out := en.newIvec(en.S * I)
	en.forRows(en.S, 8*I, func(lo, hi int) { en.activationRows(h1, out, lo, hi, 0) })
	return out
}

// activationRows is activation on rows [lo, hi) (see gatherRows for off).
//
// The enclosure is a function of (gate, up) alone, and the rows of the sentinel tail (most
// rows of a rank of a large expert-parallel world) all have gate = up = exact +0 (mask B):
// that element is derived once per call and reused.
func (en *encl) activationRows(h1 rowsrc, out ivec, lo, hi, off int) {
	I := en.I
	var zero rv
	haveZero := false
	for i := lo; i < hi; i++ {
		for j := 0; j < I; j++ {
			g := h1.at(i*2*I + en.c.GateCol(j))
			u := h1.at(i*2*I + en.c.UpCol(j))
			var a rv
			switch {
			case !isPosZeroRV(g) || !isPosZeroRV(u):
				a = en.arith().actForwardC(en.c.Act, en.d, en.ct.Activation, g, u)
			case haveZero:
				a = zero
			default:
				a = en.arith().actForwardC(en.c.Act, en.d, en.ct.Activation, g, u)
				zero, haveZero = a, true
			}
			out.c[(i-off)*I+j], out.r[(i-off)*I+j] = en.round(a.v, a.e)
		}
	}
}

// isPosZeroRV reports whether x is exactly +0 with radius +0 (bitwise).
func isPosZeroRV(x rv) bool { return math.Float64bits(x.v)|math.Float64bits(x.e) == 0 }

// gemm2: rows < R computed; tail zero (mask C).
func (en *encl) gemm2(act rowsrc) ivec {
	out := en.newIvec(en.S * en.H)
	en.forExperts(false, en.R*en.H*en.I, func(x *encl, e int) {
		b, end := x.rowsOf(e)
		x.gemmRows(out, x.H, act.rows(x, b, end, x.I), x.weightMat(x.w2s[e], x.H, x.I), x.bias2(e), b)
	})
	return out
}

// weight: o = round_d(h2·rw[slot]) for all rows.
func (en *encl) weight(h2 rowsrc) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	en.forRows(en.S, 4*H, func(lo, hi int) { en.weightRows(h2, out, lo, hi, 0) })
	return out
}

// weightRows is weight on rows [lo, hi) (see gatherRows for off).
func (en *encl) weightRows(h2 rowsrc, out ivec, lo, hi, off int) {
	H := en.H
	for i := lo; i < hi; i++ {
		w := en.rowWeight(i)
		o := (i - off) * H
		for h := 0; h < H; h++ {
			x := en.weighted(h2.at(i*H+h), w)
			out.c[o+h], out.r[o+h] = x.v, x.e
		}
	}
}

// rowWeight is the routing weight of sorted row i, exactly.
func (en *encl) rowWeight(i int) rv { return exactRV(en.c.Routing.Weights[en.p.Perm[i]]) }

// weighted is weight's element from h2 element x and its row's weight w.
func (en *encl) weighted(x, w rv) rv {
	x = en.arith().mul(x, w)
	if en.noRound {
		return x
	}
	return storeAs(en.d, x, en.ct.Weight, contract.InDtype)
}

// weightOf is weight's element of sorted row i from h2 element x.
func (en *encl) weightOf(x rv, i int) rv { return en.weighted(x, en.rowWeight(i)) }

// ksum: out[t,h] = round_d(fl32 sum over k in order from +0 of rows[Inv[t·K+k], h]).
func (en *encl) ksum(rows rowsrc, how contract.Sum) ivec {
	out := en.newIvec(en.T * en.H)
	en.forRows(en.T, 4*en.H*en.K, func(lo, hi int) { en.ksumRows(rows, how, out, lo, hi, 0) })
	return out
}

// ksumRows is ksum on tokens [lo, hi) (see gatherRows for off).
func (en *encl) ksumRows(rows rowsrc, how contract.Sum, out ivec, lo, hi, off int) {
	H, K := en.H, en.K
	if how != (contract.Sum{}) && !en.noRound {
		cs, rs := make([]float64, K), make([]float64, K)
		for t := lo; t < hi; t++ {
			o := (t - off) * H
			for h := 0; h < H; h++ {
				for k := 0; k < K; k++ {
					i := int(en.p.Inv[t*K+k])
					x := rows.at(i*H + h)
					cs[k], rs[k] = x.v, x.e
				}
				s := sumTerms(en.d, how, cs, rs)
				out.c[o+h], out.r[o+h] = en.round(s.v, s.e)
			}
		}
		return
	}
	for t := lo; t < hi; t++ {
		o := (t - off) * H
		for h := 0; h < H; h++ {
			s := exactRV(0)
			for k := 0; k < K; k++ {
				i := int(en.p.Inv[t*K+k])
				s = en.arith().add(s, rows.at(i*H+h))
			}
			out.c[o+h], out.r[o+h] = en.round(s.v, s.e)
		}
	}
}

func (en *encl) combine(o rowsrc) ivec   { return en.ksum(o, en.ct.Combine) }
func (en *encl) scatter(dxs rowsrc) ivec { return en.ksum(dxs, en.ct.Scatter) }

// drw: d_rw[i] = round_d(fl32 Σ_h d_o[i,h]·h2[i,h]) for all rows (unordered reduction).
func (en *encl) drw(do, h2 rowsrc) ivec {
	out := en.newIvec(en.S)
	if !en.parallel(en.S * 8 * en.H) {
		en.drwRows(do, h2, out, 0, en.S)
		return out
	}
	// Ranges of drwBlock rows: each range makes its own scratch (a workspace and four
	// rows), which ranges of par.MinWork (two rows at H = 2048) made for every other row:
	// gigabytes of garbage at a real layer's S, and most of the step's time in page faults.
	nb := (en.S + drwBlock - 1) / drwBlock
	en.forRows(nb, 8*en.H*drwBlock, func(lo, hi int) {
		x := *en
		x.ws, x.ar = &workspace{}, nil // this range's own scratch
		x.drwRows(do, h2, out, lo*drwBlock, min(hi*drwBlock, en.S))
	})
	return out
}

// drwBlock is the rows of one range of drw's split.
const drwBlock = 256

// drwRows is drw on rows [lo, hi).
func (en *encl) drwRows(do, h2 rowsrc, out ivec, lo, hi int) {
	H := en.H
	ra, rb := mat{1, H, nil, nil}, mat{1, H, nil, nil} // one row of do and h2 (point sources)
	if do.pt || h2.pt {
		ra, rb = newMat(1, H), newMat(1, H)
	}
	// The sentinel tail (stage-local checks, en.tailMemo): a row ≥ R whose h2 the path
	// left +0 and whose d_o is finite has every product exactly ±0 (arith.mul: 0 times a
	// finite value), M = 0, so the reduction below gives round_d(+0) with radius 0 whatever
	// d_o holds (the fused loops of reduceAcc, H < 2^15: c sums ±0 from +0, mm == 0 decides
	// exactness before any magnitude is read): the first such row's enclosure, derived,
	// is every such row's (TestTailFastBitwise).
	var memo rv
	haveMemo := false
	tailRow := func(i int) bool {
		return en.tailMemo && i >= en.R && H < 1<<15 && do.pt && h2.pt &&
			allPosZero32(h2.p[i*H:(i+1)*H]) && allFinite32(do.p[i*H:(i+1)*H])
	}
	memoed := func(i int, short bool) bool {
		if short && haveMemo {
			out.c[i], out.r[i] = memo.v, memo.e
			if en.tailHits != nil {
				en.tailHits.Add(1)
			}
			return true
		}
		return false
	}
	keep := func(i int, short bool) {
		if short && !haveMemo {
			memo, haveMemo = rv{out.c[i], out.r[i]}, true
		}
	}
	if how := en.ct.DRWProducts; (how == contract.InDtype || how == contract.Either) && !en.noRound {
		// products rounded to the dtype (or either) before an fp32 reduction in any order:
		// the reduction of the stored products against ones (docs/oracle.md §9)
		ones := en.newMat(1, H)
		for l := range ones.c {
			ones.c[l] = 1
		}
		pr := en.newMat(1, H)
		for i := lo; i < hi; i++ {
			short := tailRow(i)
			if memoed(i, short) {
				continue
			}
			for h := 0; h < H; h++ {
				x := en.arith().mul(do.at(i*H+h), h2.at(i*H+h))
				x = storeAs(en.d, x, how, contract.InFP32)
				pr.c[h], pr.r[h] = x.v, x.e
				if x.unknown() {
					pr.c[h], pr.r[h] = 0, math.NaN()
				}
			}
			reduceAcc(en.d, pr, ones, nil, true, false, en.ws, func(_, _ int, c, r float64) { out.c[i], out.r[i] = en.round(c, r) })
			if how == contract.Either {
				A, B := do.rowsInto(ra, i, i+1, H), h2.rowsInto(rb, i, i+1, H)
				reduceAcc(en.d, A, B, nil, true, false, en.ws, func(_, _ int, c, r float64) {
					c, r = en.round(c, r)
					x := hullRV(rv{out.c[i], out.r[i]}, rv{c, r})
					out.c[i], out.r[i] = x.v, x.e
				})
			}
			keep(i, short)
		}
		return
	}
	for i := lo; i < hi; i++ {
		short := tailRow(i)
		if memoed(i, short) {
			continue
		}
		A := do.rowsInto(ra, i, i+1, H)
		B := h2.rowsInto(rb, i, i+1, H)
		reduceAcc(en.d, A, B, nil, !en.noRound, false, en.ws, func(_, _ int, c, r float64) { out.c[i], out.r[i] = en.round(c, r) })
		keep(i, short)
	}
}

// allFinite32 reports whether every value of v is finite.
func allFinite32(v []float32) bool {
	for _, x := range v {
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return false
		}
	}
	return true
}

// dh2: rows < R: round_d(d_o·rw); tail zero (backward of mask C).
func (en *encl) dh2(do rowsrc) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	en.forRows(en.R, 4*H, func(lo, hi int) { en.dh2Rows(do, out, lo, hi, 0) })
	return out
}

// dh2Rows is dh2 on rows [lo, hi) below R (see gatherRows for off).
func (en *encl) dh2Rows(do rowsrc, out ivec, lo, hi, off int) {
	H := en.H
	for i := lo; i < min(hi, en.R); i++ {
		w := exactRV(en.c.Routing.Weights[en.p.Perm[i]])
		o := (i - off) * H
		for h := 0; h < H; h++ {
			x := en.arith().mul(do.at(i*H+h), w)
			out.c[o+h], out.r[o+h] = en.round(x.v, x.e)
		}
	}
}

// markTailUnknown marks rows ≥ R of a stage the path leaves unwritten.
func (en *encl) markTailUnknown(v ivec, n int) {
	en.forRows(en.S-en.R, n, func(lo, hi int) {
		for i := (en.R + lo) * n; i < (en.R+hi)*n; i++ {
			v.setUnknown(i)
		}
	})
}

// dgrad2: d_act rows < R = round_d(d_h2 · W2e) (reduction over H); tail unwritten.
func (en *encl) dgrad2(dh2 rowsrc) ivec {
	I := en.I
	out := en.newIvec(en.S * I)
	en.forExperts(false, en.R*en.H*I, func(x *encl, e int) {
		b, end := x.rowsOf(e)
		x.gemmRows(out, I, dh2.rows(x, b, end, x.H), x.transposeExact(x.w2s[e], x.H, I), nil, b)
	})
	en.markTailUnknown(out, I)
	return out
}

// dgrad1: d_xs rows < R = round_d(d_h1 · W1e) (reduction over 2I); tail zero (mask A bwd).
func (en *encl) dgrad1(dh1 rowsrc) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	en.forExperts(false, en.R*2*en.I*H, func(x *encl, e int) {
		b, end := x.rowsOf(e)
		x.gemmRows(out, H, dh1.rows(x, b, end, 2*x.I), x.transposeExact(x.w1s[e], 2*x.I, H), nil, b)
	})
	return out
}

// actBackward: rows < R computed from (h1, d_act); tail zero (mask B backward).
func (en *encl) actBackward(h1, dact rowsrc) ivec {
	I := en.I
	out := en.newIvec(en.S * 2 * I)
	en.forRows(en.R, 16*I, func(lo, hi int) { en.actBackwardRows(h1, dact, out, lo, hi, 0) })
	return out
}

// actBackwardRows is actBackward on rows [lo, hi) below R (see gatherRows for off).
func (en *encl) actBackwardRows(h1, dact rowsrc, out ivec, lo, hi, off int) {
	I := en.I
	for i := lo; i < min(hi, en.R); i++ {
		o := (i - off) * 2 * I
		for j := 0; j < I; j++ {
			gc, uc := en.c.GateCol(j), en.c.UpCol(j)
			g := h1.at(i*2*I + gc)
			u := h1.at(i*2*I + uc)
			da := dact.at(i*I + j)
			dg, du := en.arith().actBackwardC(en.c.Act, en.d, en.ct.Activation, g, u, da)
			out.c[o+gc], out.r[o+gc] = en.round(dg.v, dg.e)
			out.c[o+uc], out.r[o+uc] = en.round(du.v, du.e)
		}
	}
}

// wgrad encloses dW[e] (nOut×nIn, standard layout) = round_d(Σ_{rows of e} dOut[i,:]ᵀ·in[i,:])
// (and, where the contract admits it, the per-slot form: wgradslots.go) into dw (element (e, i, j) at at(e, i, j): the case's layout) and returns the bias
// gradient over rows by clamped id; experts with no rows get exact zeros.
func (en *encl) wgrad(dout, in rowsrc, nOut, nIn int, bias bool, dw ivec, at func(e, i, j int) int) (bg []ivec) {
	en.forExperts(false, en.R*nOut*nIn, func(x *encl, e int) {
		x.wgradExpert(dout, in, nOut, nIn, e, func(i, j int, c, r float64) {
			k := at(e, i, j)
			dw.c[k], dw.r[k] = c, r
		})
	})
	return en.wgradBias(dout, nOut, bias)
}

// wgradExpert encloses expert e's dW (nOut×nIn, nothing for an expert without rows),
// passing element (i, j) to set.
func (x *encl) wgradExpert(dout, in rowsrc, nOut, nIn, e int, set func(i, j int, c, r float64)) {
	x.wgradBlock(dout, in, nOut, nIn, e, 0, nOut, 0, nIn, set)
}

// wgradBlock is wgradExpert for the block of output rows [i0, i1) and columns [j0, j1) of
// expert e's dW, passing element (i, j) as (i − i0, j − j0): each element the same
// reduction over all of the expert's rows, from the same operand rows.
func (x *encl) wgradBlock(dout, in rowsrc, nOut, nIn, e, i0, i1, j0, j1 int, set func(i, j int, c, r float64)) {
	b, end := x.rowsOf(e)
	if end <= b {
		return
	}
	A := x.operand(x.colsMatRange(dout, b, end, nOut, i0, i1)) // (i1−i0) × rows
	var B mat                                                  // (j1−j0) × rows
	var bi *opInfo
	if x.ops != nil && j0 == 0 && j1 == nIn {
		// the parts of a split expert (blocks of output rows) share it (parallel.go)
		var done func()
		B, bi, done = x.shared(e, func(y *encl) mat { return y.colsMatRange(in, b, end, nIn, 0, nIn) })
		defer done()
	} else {
		B = x.operand(x.colsMatRange(in, b, end, nIn, j0, j1))
	}
	mp := x.slotMagnitudes(A, B) // nil unless the contract admits per-slot products (wgradslots.go)
	nb := j1 - j0
	reduceAccB(x.d, A, B, bi, nil, !x.noRound, x.rpr(), x.ws, func(i, j int, c, r float64) {
		if mp != nil {
			r = slotsRadius(x.d, x.ct.WGradSlots, end-b, r, mp[i*nb+j])
		}
		c, r = x.round(c, r)
		set(i, j, c, r)
	})
}

// wgradBias encloses the bias gradient of every expert over its rows by clamped id (the
// tail's rows in the last expert), nil without biases.
func (en *encl) wgradBias(dout rowsrc, nOut int, bias bool) (bg []ivec) {
	bg = make([]ivec, en.E)
	if !bias {
		return bg
	}
	for e := range bg {
		bg[e] = en.newIvec(nOut)
	}
	en.forExperts(true, en.S*nOut, func(x *encl, e int) {
		b, end := x.rowsOf(e)
		if e == x.E-1 {
			end = x.S // the clamped id puts the tail into the last expert
		}
		if end > b && x.ct.BiasGrad != (contract.Sum{}) && !x.noRound {
			A := x.colsMat(dout, b, end, nOut)
			for i := 0; i < nOut; i++ {
				s := sumTerms(x.d, x.ct.BiasGrad, A.c[i*(end-b):(i+1)*(end-b)], A.r[i*(end-b):(i+1)*(end-b)])
				bg[e].c[i], bg[e].r[i] = x.round(s.v, s.e)
			}
		} else if end > b {
			A := x.colsMat(dout, b, end, nOut)
			ones := x.newMat(1, end-b)
			for l := range ones.c {
				ones.c[l] = 1
			}
			reduceAcc(x.d, A, ones, nil, !x.noRound, false, x.ws, func(i, _ int, c, r float64) {
				bg[e].c[i], bg[e].r[i] = x.round(c, r)
			})
		}
	})
	return bg
}

func (en *encl) wgrad2(dh2, act rowsrc) (ivec, ivec) {
	dw := en.newIvec(en.c.LenW2())
	bg := en.wgrad(dh2, act, en.H, en.I, en.c.Bias, dw, en.c.W2Index)
	return dw, concat(bg, en.c.Bias)
}

func (en *encl) wgrad1(dh1, xs rowsrc) (ivec, ivec) {
	dw := en.newIvec(en.c.LenW1())
	bg := en.wgrad(dh1, xs, 2*en.I, en.H, en.c.Bias, dw, en.c.W1Index)
	return dw, concat(bg, en.c.Bias)
}

func concat(v []ivec, ok bool) ivec {
	if !ok {
		return ivec{}
	}
	var out ivec
	for _, x := range v {
		out.c = append(out.c, x.c...)
		out.r = append(out.r, x.r...)
	}
	return out
}

// unsort maps a per-sorted-row vector to slot order.
func (en *encl) unsort(v ivec) ivec {
	out := en.newIvec(en.S)
	for i, s := range en.p.Perm {
		out.c[s], out.r[s] = v.c[i], v.r[i]
	}
	return out
}
