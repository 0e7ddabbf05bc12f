package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/contract"
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
	// ct is the contract whose rounding freedoms the enclosure admits (zero: exact).
	ct contract.Contract
	ws *workspace
	ar *arena
}

// arena hands out float64 slices from large slabs, so a check allocates a few slabs instead
// of hundreds of vectors; reset makes the space reusable for the next case.
type arena struct {
	slabs [][]float64
	cur   int // slab in use
	off   int // next free element in it
}

func (a *arena) get(n int) []float64 {
	if a == nil {
		return make([]float64, n)
	}
	for a.cur < len(a.slabs) {
		s := a.slabs[a.cur]
		if a.off+n <= len(s) {
			v := s[a.off : a.off+n : a.off+n]
			a.off += n
			clear(v)
			return v
		}
		a.cur++
		a.off = 0
	}
	size := max(n, 1<<16)
	a.slabs = append(a.slabs, make([]float64, size))
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

// point encloses exactly known float32 values (a path's reported stage); NaN and ±Inf become
// unknown elements.
func (en *encl) point(x []float32) ivec {
	v := en.newIvec(len(x))
	for i, c := range x {
		f := float64(c)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			v.setUnknown(i)
			continue
		}
		v.c[i] = f
	}
	return v
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

func newEncl(c *moe.Case, p *moe.Plan) *encl { return newEnclIn(c, p, nil, &workspace{}) }

// newEnclIn builds the context with scratch from ar and ws (either may be nil).
func newEnclIn(c *moe.Case, p *moe.Plan, ar *arena, ws *workspace) *encl {
	en := &encl{c: c, d: c.DType, p: p, S: c.S(), T: c.T, H: c.H, I: c.I, E: c.E, K: c.K, R: p.Rows, ws: ws, ar: ar}
	en.w1s = make([][]float64, c.E)
	en.w2s = make([][]float64, c.E)
	for e := 0; e < c.E; e++ {
		w1 := en.ar.get(2 * c.I * c.H)
		for j := 0; j < 2*c.I; j++ {
			for h := 0; h < c.H; h++ {
				w1[j*c.H+h] = c.W1[c.W1Index(e, j, h)]
			}
		}
		w2 := en.ar.get(c.H * c.I)
		for h := 0; h < c.H; h++ {
			for j := 0; j < c.I; j++ {
				w2[h*c.I+j] = c.W2[c.W2Index(e, h, j)]
			}
		}
		en.w1s[e], en.w2s[e] = w1, w2
	}
	en.tok = make([]int, en.S)
	for i, s := range p.Perm {
		en.tok[i] = int(s) / c.K
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
	return encloseIn(c, mathematical, ct, nil, &workspace{}, true)
}

// encloseIn is encloseUnder with scratch from ar and ws (ar may be nil: plain allocations;
// with an arena the result lives in it and is valid until its next reset). Without wgrad the
// weight- and bias-gradient enclosures (DW1, DB1, DW2, DB2) are not derived and left empty:
// nothing else depends on them (a caller that compares no weight gradient within a bound).
func encloseIn(c *moe.Case, mathematical bool, ct contract.Contract, ar *arena, ws *workspace, wgrad bool) (*Enclosure, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	p, err := c.Plan()
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	en := newEnclIn(c, p, ar, ws)
	en.noRound = mathematical
	en.ct = ct
	out := &Enclosure{Plan: p, Contract: ct}
	out.Xs = en.gather(c.X, true)
	out.H1 = en.gemm1(out.Xs)
	out.Act = en.activation(out.H1)
	out.H2 = en.gemm2(out.Act)
	out.O = en.weight(out.H2)
	out.Y = en.combine(out.O)
	out.DO = en.gather(c.DY, false)
	out.DRWSorted = en.drw(out.DO, out.H2)
	out.DH2 = en.dh2(out.DO)
	out.DAct = en.dgrad2(out.DH2)
	if wgrad {
		out.DW2, out.DB2 = en.wgrad2(out.DH2, out.Act)
	}
	out.DH1 = en.actBackward(out.H1, out.DAct)
	out.DXs = en.dgrad1(out.DH1)
	if wgrad {
		out.DW1, out.DB1 = en.wgrad1(out.DH1, out.Xs)
	}
	out.DX = en.scatter(out.DXs)
	out.DRW = en.unsort(out.DRWSorted)
	return out, nil
}

func (en *encl) rowsOf(e int) (int, int) { return en.p.Begin(e), en.p.End(e) }

// gather: xs[i] = x[tok(i)] for all rows; mask A zeroes the tail when mask is set
// (forward); the dY gather (backward step 10) is not masked.
func (en *encl) gather(x []float64, mask bool) ivec {
	H := en.H
	v := en.newIvec(en.S * H)
	for i := 0; i < en.S; i++ {
		if mask && i >= en.R {
			continue // zero, exactly
		}
		t := en.tok[i]
		for h := 0; h < H; h++ {
			x := x[t*H+h]
			v.c[i*H+h] = x
			if en.noRound {
				v.r[i*H+h] = 0x1p-1000
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				v.setUnknown(i*H + h)
			}
		}
	}
	return v
}

// rowsMat copies rows [b, e) of a row-major ivec with row length n into a mat.
func rowsMat(v ivec, b, e, n int) mat {
	return mat{e - b, n, v.c[b*n : e*n], v.r[b*n : e*n]}
}

// colsMat copies rows [b, e) of v (row length n) transposed: an n×(e−b) mat.
func (en *encl) colsMat(v ivec, b, e, n int) mat {
	m := en.newMat(n, e-b)
	for i := b; i < e; i++ {
		for j := 0; j < n; j++ {
			m.c[j*(e-b)+i-b] = v.c[i*n+j]
			m.r[j*(e-b)+i-b] = v.r[i*n+j]
		}
	}
	return m
}

func exactMat(x []float64, m, k int) mat { return mat{m, k, x, make([]float64, len(x))} }

func (en *encl) weightMat(x []float64, m, k int) mat {
	w := exactMat(x, m, k)
	if en.noRound {
		for i := range w.r {
			w.r[i] = 0x1p-1000
		}
	}
	return w
}

// transposeExact returns the k×m transpose of a row-major m×k exact matrix.
func (en *encl) transposeExact(x []float64, m, k int) mat {
	t := en.newMat(k, m)
	for i := 0; i < m; i++ {
		for l := 0; l < k; l++ {
			t.c[l*m+i] = x[i*k+l]
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
	A, W = en.operand(A), en.operand(W)
	how := en.ct.GEMMBias
	if bias == nil || how == contract.AsPath || how == contract.InFP32 || en.noRound {
		reduceAcc(en.d, A, W, bias, !en.noRound, en.ws, func(i, j int, c, r float64) {
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
		reduceAcc(en.d, A, W, nil, true, en.ws, func(i, j int, c, r float64) {
			x := after(i, j, c, r)
			out.c[(b+i)*n+j], out.r[(b+i)*n+j] = x.v, x.e
		})
		return
	}
	reduceAcc(en.d, A, W, bias, true, en.ws, func(i, j int, c, r float64) {
		out.c[(b+i)*n+j], out.r[(b+i)*n+j] = en.round(c, r)
	})
	reduceAcc(en.d, A, W, nil, true, en.ws, func(i, j int, c, r float64) {
		k := (b+i)*n + j
		x := hullRV(rv{out.c[k], out.r[k]}, after(i, j, c, r))
		out.c[k], out.r[k] = x.v, x.e
	})
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

func (en *encl) bias2(e int) []float64 {
	if !en.c.Bias {
		return nil
	}
	return en.c.B2[e*en.H : (e+1)*en.H]
}

// gemm1: rows < R computed; tail zero (mask B).
func (en *encl) gemm1(xs ivec) ivec {
	n := 2 * en.I
	out := en.newIvec(en.S * n)
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		if b == end {
			continue
		}
		en.gemmRows(out, n, rowsMat(xs, b, end, en.H), en.weightMat(en.w1s[e], n, en.H), en.bias1(e), b)
	}
	return out
}

// activation: all rows, fp32 elementwise, stored rounded.
func (en *encl) activation(h1 ivec) ivec {
	I := en.I
	out := en.newIvec(en.S * I)
	for i := 0; i < en.S; i++ {
		for j := 0; j < I; j++ {
			g := rv{h1.c[i*2*I+en.c.GateCol(j)], h1.r[i*2*I+en.c.GateCol(j)]}
			u := rv{h1.c[i*2*I+en.c.UpCol(j)], h1.r[i*2*I+en.c.UpCol(j)]}
			a := en.arith().actForwardC(en.c.Act, en.d, en.ct.Activation, g, u)
			out.c[i*I+j], out.r[i*I+j] = en.round(a.v, a.e)
		}
	}
	return out
}

// gemm2: rows < R computed; tail zero (mask C).
func (en *encl) gemm2(act ivec) ivec {
	out := en.newIvec(en.S * en.H)
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		if b == end {
			continue
		}
		en.gemmRows(out, en.H, rowsMat(act, b, end, en.I), en.weightMat(en.w2s[e], en.H, en.I), en.bias2(e), b)
	}
	return out
}

// weight: o = round_d(h2·rw[slot]) for all rows.
func (en *encl) weight(h2 ivec) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	for i := 0; i < en.S; i++ {
		w := exactRV(en.c.Routing.Weights[en.p.Perm[i]])
		for h := 0; h < H; h++ {
			x := en.arith().mul(rv{h2.c[i*H+h], h2.r[i*H+h]}, w)
			if en.noRound {
				out.c[i*H+h], out.r[i*H+h] = x.v, x.e
				continue
			}
			x = storeAs(en.d, x, en.ct.Weight, contract.InDtype)
			out.c[i*H+h], out.r[i*H+h] = x.v, x.e
		}
	}
	return out
}

// ksum: out[t,h] = round_d(fl32 sum over k in order from +0 of rows[Inv[t·K+k], h]).
func (en *encl) ksum(rows ivec, how contract.Sum) ivec {
	H, K := en.H, en.K
	out := en.newIvec(en.T * H)
	if how != (contract.Sum{}) && !en.noRound {
		cs, rs := make([]float64, K), make([]float64, K)
		for t := 0; t < en.T; t++ {
			for h := 0; h < H; h++ {
				for k := 0; k < K; k++ {
					i := int(en.p.Inv[t*K+k])
					cs[k], rs[k] = rows.c[i*H+h], rows.r[i*H+h]
				}
				s := sumTerms(en.d, how, cs, rs)
				out.c[t*H+h], out.r[t*H+h] = en.round(s.v, s.e)
			}
		}
		return out
	}
	for t := 0; t < en.T; t++ {
		for h := 0; h < H; h++ {
			s := exactRV(0)
			for k := 0; k < K; k++ {
				i := int(en.p.Inv[t*K+k])
				s = en.arith().add(s, rv{rows.c[i*H+h], rows.r[i*H+h]})
			}
			out.c[t*H+h], out.r[t*H+h] = en.round(s.v, s.e)
		}
	}
	return out
}

func (en *encl) combine(o ivec) ivec   { return en.ksum(o, en.ct.Combine) }
func (en *encl) scatter(dxs ivec) ivec { return en.ksum(dxs, en.ct.Scatter) }

// drw: d_rw[i] = round_d(fl32 Σ_h d_o[i,h]·h2[i,h]) for all rows (unordered reduction).
func (en *encl) drw(do, h2 ivec) ivec {
	H := en.H
	out := en.newIvec(en.S)
	if how := en.ct.DRWProducts; (how == contract.InDtype || how == contract.Either) && !en.noRound {
		// products rounded to the dtype (or either) before an fp32 reduction in any order:
		// the reduction of the stored products against ones (docs/oracle.md §9)
		ones := en.newMat(1, H)
		for l := range ones.c {
			ones.c[l] = 1
		}
		pr := en.newMat(1, H)
		for i := 0; i < en.S; i++ {
			for h := 0; h < H; h++ {
				x := en.arith().mul(rv{do.c[i*H+h], do.r[i*H+h]}, rv{h2.c[i*H+h], h2.r[i*H+h]})
				x = storeAs(en.d, x, how, contract.InFP32)
				pr.c[h], pr.r[h] = x.v, x.e
				if x.unknown() {
					pr.c[h], pr.r[h] = 0, math.NaN()
				}
			}
			reduceAcc(en.d, pr, ones, nil, true, en.ws, func(_, _ int, c, r float64) { out.c[i], out.r[i] = en.round(c, r) })
			if how == contract.Either {
				A, B := rowsMat(do, i, i+1, H), rowsMat(h2, i, i+1, H)
				reduceAcc(en.d, A, B, nil, true, en.ws, func(_, _ int, c, r float64) {
					c, r = en.round(c, r)
					x := hullRV(rv{out.c[i], out.r[i]}, rv{c, r})
					out.c[i], out.r[i] = x.v, x.e
				})
			}
		}
		return out
	}
	for i := 0; i < en.S; i++ {
		A := rowsMat(do, i, i+1, H)
		B := rowsMat(h2, i, i+1, H)
		reduceAcc(en.d, A, B, nil, !en.noRound, en.ws, func(_, _ int, c, r float64) { out.c[i], out.r[i] = en.round(c, r) })
	}
	return out
}

// dh2: rows < R: round_d(d_o·rw); tail zero (backward of mask C).
func (en *encl) dh2(do ivec) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	for i := 0; i < en.R; i++ {
		w := exactRV(en.c.Routing.Weights[en.p.Perm[i]])
		for h := 0; h < H; h++ {
			x := en.arith().mul(rv{do.c[i*H+h], do.r[i*H+h]}, w)
			out.c[i*H+h], out.r[i*H+h] = en.round(x.v, x.e)
		}
	}
	return out
}

// markTailUnknown marks rows ≥ R of a stage the path leaves unwritten.
func (en *encl) markTailUnknown(v ivec, n int) {
	for i := en.R * n; i < en.S*n; i++ {
		v.setUnknown(i)
	}
}

// dgrad2: d_act rows < R = round_d(d_h2 · W2e) (reduction over H); tail unwritten.
func (en *encl) dgrad2(dh2 ivec) ivec {
	I := en.I
	out := en.newIvec(en.S * I)
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		if b == end {
			continue
		}
		en.gemmRows(out, I, rowsMat(dh2, b, end, en.H), en.transposeExact(en.w2s[e], en.H, I), nil, b)
	}
	en.markTailUnknown(out, I)
	return out
}

// dgrad1: d_xs rows < R = round_d(d_h1 · W1e) (reduction over 2I); tail zero (mask A bwd).
func (en *encl) dgrad1(dh1 ivec) ivec {
	H := en.H
	out := en.newIvec(en.S * H)
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		if b == end {
			continue
		}
		en.gemmRows(out, H, rowsMat(dh1, b, end, 2*en.I), en.transposeExact(en.w1s[e], 2*en.I, H), nil, b)
	}
	return out
}

// actBackward: rows < R computed from (h1, d_act); tail zero (mask B backward).
func (en *encl) actBackward(h1, dact ivec) ivec {
	I := en.I
	out := en.newIvec(en.S * 2 * I)
	for i := 0; i < en.R; i++ {
		for j := 0; j < I; j++ {
			gc, uc := en.c.GateCol(j), en.c.UpCol(j)
			g := rv{h1.c[i*2*I+gc], h1.r[i*2*I+gc]}
			u := rv{h1.c[i*2*I+uc], h1.r[i*2*I+uc]}
			da := rv{dact.c[i*I+j], dact.r[i*I+j]}
			dg, du := en.arith().actBackwardC(en.c.Act, en.d, en.ct.Activation, g, u, da)
			out.c[i*2*I+gc], out.r[i*2*I+gc] = en.round(dg.v, dg.e)
			out.c[i*2*I+uc], out.r[i*2*I+uc] = en.round(du.v, du.e)
		}
	}
	return out
}

// wgrad encloses dW[e] (nOut×nIn, standard layout) = round_d(Σ_{rows of e} dOut[i,:]ᵀ·in[i,:])
// and the bias gradient over rows by clamped id; experts with no rows get exact zeros.
func (en *encl) wgrad(dout, in ivec, nOut, nIn int, bias bool) (w []ivec, bg []ivec) {
	w = make([]ivec, en.E)
	bg = make([]ivec, en.E)
	for e := 0; e < en.E; e++ {
		w[e] = en.newIvec(nOut * nIn)
		b, end := en.rowsOf(e)
		if end > b {
			A := en.operand(en.colsMat(dout, b, end, nOut)) // nOut × rows
			B := en.operand(en.colsMat(in, b, end, nIn))    // nIn × rows
			reduceAcc(en.d, A, B, nil, !en.noRound, en.ws, func(i, j int, c, r float64) {
				w[e].c[i*nIn+j], w[e].r[i*nIn+j] = en.round(c, r)
			})
		}
		if bias {
			bg[e] = en.newIvec(nOut)
			if e == en.E-1 {
				end = en.S // the clamped id puts the tail into the last expert
			}
			if end > b && en.ct.BiasGrad != (contract.Sum{}) && !en.noRound {
				A := en.colsMat(dout, b, end, nOut)
				for i := 0; i < nOut; i++ {
					s := sumTerms(en.d, en.ct.BiasGrad, A.c[i*(end-b):(i+1)*(end-b)], A.r[i*(end-b):(i+1)*(end-b)])
					bg[e].c[i], bg[e].r[i] = en.round(s.v, s.e)
				}
			} else if end > b {
				A := en.colsMat(dout, b, end, nOut)
				ones := en.newMat(1, end-b)
				for l := range ones.c {
					ones.c[l] = 1
				}
				reduceAcc(en.d, A, ones, nil, !en.noRound, en.ws, func(i, _ int, c, r float64) {
					bg[e].c[i], bg[e].r[i] = en.round(c, r)
				})
			}
		}
	}
	return w, bg
}

func (en *encl) wgrad2(dh2, act ivec) (ivec, ivec) {
	w, bg := en.wgrad(dh2, act, en.H, en.I, en.c.Bias)
	dw := en.newIvec(en.c.LenW2())
	for e := 0; e < en.E; e++ {
		for h := 0; h < en.H; h++ {
			for j := 0; j < en.I; j++ {
				k := en.c.W2Index(e, h, j)
				dw.c[k], dw.r[k] = w[e].c[h*en.I+j], w[e].r[h*en.I+j]
			}
		}
	}
	return dw, concat(bg, en.c.Bias)
}

func (en *encl) wgrad1(dh1, xs ivec) (ivec, ivec) {
	n := 2 * en.I
	w, bg := en.wgrad(dh1, xs, n, en.H, en.c.Bias)
	dw := en.newIvec(en.c.LenW1())
	for e := 0; e < en.E; e++ {
		for j := 0; j < n; j++ {
			for h := 0; h < en.H; h++ {
				k := en.c.W1Index(e, j, h)
				dw.c[k], dw.r[k] = w[e].c[j*en.H+h], w[e].r[j*en.H+h]
			}
		}
	}
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
