package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// The rank sides of an expert-parallel split from the unsplit side (issue 14, "cheaper
// properties"). Rank r of a split with E experts per rank computes, for each of its experts
// e, exactly the rows the unsplit layer's expert r·E+e computes: the same slots in the same
// (stable-sorted) order, the same tokens, inputs, dY, weights, biases and routing weights.
// Every stage enclosure of such a row (gather, the GEMMs and their dgrads — reduced per
// expert block, which is the same block — the activation and its backward, the weight
// multiply, d_h2, d_rw) is a function of that row's inputs and its expert's block alone, so
// it is the unsplit side's row, bit for bit. What is the rank's own is its sentinel tail
// (the slots of the other ranks) and what reads every slot of a token: the combine, the
// scatter, the unsort and the gradients of the weights and biases. rankEnclosureValid copies the
// former and derives the latter with the same functions encloseIn uses
// (TestRankEnclosureSameAsFull compares every tensor, bitwise, with encloseIn's).

// wgradNeed says which weight-gradient enclosures a caller reads.
type wgradNeed struct{ w, b bool } // dW1 and dW2; dB1 and dB2

// rankEnclosureValid is encloseIn(rc, false, ct, ar, ws, need, …)'s outputs (Y, dX, d_rw and
// the gradients need asks for; no stages) for rank case rc of the split whose unsplit layer
// uc has enclosure u (derived under ct): the rows rc shares with uc are copied from u (see
// above), the rest derived. Where rc is not a rank of that split (epsplit.Rows, the condition
// under which the rows' inputs are the same), it is encloseIn itself. Its caller has
// validated rc (rc.Validate(moe.Limits{}) returned nil, and rc has not changed since), and uc
// with u's derivation. With split the caller knows that epsplit.Rows' conditions on the
// configs and the inputs hold (reference.RunSplit compared them): only the rows are mapped
// (epsplit.RowMap).
func rankEnclosureValid(u *Enclosure, uc, rc *moe.Case, ct contract.Contract, ar *arena, ws *workspace, need wgradNeed, split bool) (*Enclosure, error) {
	full := func() (*Enclosure, error) { return encloseValid(rc, false, ct, ar, ws, need, par.New(0, 0), nil) }
	rp, err := rc.Plan()
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	var m []int
	var ok bool
	if split {
		m, ok = epsplit.RowMap(uc, rc, u.Plan, rp)
	} else {
		m, ok = epsplit.Rows(uc, rc, u.Plan, rp)
	}
	if !ok {
		return full()
	}
	en := newEnclRows(rc, rp, ar, ws)
	en.ct = ct
	S, R, H, I := en.S, en.R, en.H, en.I
	// stage copies rows [0, R) of the unsplit stage v (row length n) into a fresh stage; the
	// tail is zero until set. (Rows [0, R) are written whole: only the tail is cleared.)
	stage := func(v ivec, n int) ivec {
		out := ivec{c: en.ar.getDirty(S * n), r: en.ar.getDirty(S * n)}
		clear(out.c[R*n:])
		clear(out.r[R*n:])
		for i, j := range m {
			copy(out.c[i*n:(i+1)*n], v.c[j*n:(j+1)*n])
			copy(out.r[i*n:(i+1)*n], v.r[j*n:(j+1)*n])
		}
		return out
	}
	out := &Enclosure{Plan: rp, Contract: ct}
	// Only what the outputs read, each stage's tail as encloseIn derives it: zero where a
	// mask makes it so (Xs: mask A; H1: mask B; H2: mask C; d_h2, d_h1, d_xs: their
	// backward masks), the row kernels over it where every row is computed (act, o, d_o,
	// d_rw). H2 and d_o are read in the tail only (o and d_rw are copied where they are
	// shared); the GEMM inputs of the gradients only where need asks for those.
	//
	// In the tail h2 is +0 (radius 0), so o's element is weighted(+0, the row's routing
	// weight): a pure function of the weight, derived once per weight and copied to every
	// element of the rows with that weight (weightRows' values, element for element). And
	// d_rw's is the reduction of the row's d_o (the token's dY, exact) against +0: where that
	// row is finite (and H < 2^15), every product is ±0 exactly and the reduction gives
	// round_d(+0) with radius 0 whatever d_o holds — drwRows' tail memo (Checker's stage
	// checks), here for exact d_o rows — so the first such row's enclosure, derived, is every
	// such row's; a row with a non-finite dY is derived on its own. drwRows of one row reads
	// that row of its sources alone: it is derived from one-row sources.
	o := stage(u.O, H)
	en.weightZeroRows(o, R, S)
	out.Y = en.combine(ivsrc(o))
	drw := en.newIvec(S)
	for i, j := range m {
		drw.c[i], drw.r[i] = u.DRWSorted.c[j], u.DRWSorted.r[j]
	}
	do1, h21, d1 := en.newIvec(H), en.newIvec(H), en.newIvec(1) // one row of d_o, h2 (+0), d_rw
	var memo rv
	haveMemo := false
	for i := R; i < S; i++ {
		t := en.tok[i]
		short := H < 1<<15 && allFinite64(rc.DY[t*H:(t+1)*H])
		if short && haveMemo {
			drw.c[i], drw.r[i] = memo.v, memo.e
			continue
		}
		clear(do1.c)
		clear(do1.r)
		en.gatherRows(rc.DY, false, do1, i, i+1, i)
		en.drwRows(ivsrc(do1), ivsrc(h21), d1, 0, 1)
		drw.c[i], drw.r[i] = d1.c[0], d1.r[0]
		if short {
			memo, haveMemo = rv{d1.c[0], d1.r[0]}, true
		}
	}
	out.DRW = en.unsort(drw)
	out.DX = en.scatter(ivsrc(stage(u.DXs, H)))
	var xs, act, dh2, dh1 ivec
	if need.w {
		xs = stage(u.Xs, H)
		act = stage(u.Act, I)
		en.activationRows(ivsrc(en.newIvec(S*2*I)), act, R, S, 0) // the tail of H1 is zero
	}
	if need.w || need.b && rc.Bias {
		dh2, dh1 = stage(u.DH2, H), stage(u.DH1, 2*I)
	}
	out.DW2, out.DB2 = en.wgradOf(need, ivsrc(dh2), ivsrc(act), H, I, en.c.LenW2(), en.c.W2Index)
	out.DW1, out.DB1 = en.wgradOf(need, ivsrc(dh1), ivsrc(xs), 2*I, H, en.c.LenW1(), en.c.W1Index)
	return out, nil
}

// wgradOf is wgrad1 or wgrad2 (dout, in, nOut, nIn, the length and the index of the weight)
// limited to what need asks for: the weight gradient only with need.w, the bias gradient
// only with need.b (and biases); what is not derived is left empty.
func (en *encl) wgradOf(need wgradNeed, dout, in rowsrc, nOut, nIn, lenW int, at func(e, i, j int) int) (dw, db ivec) {
	bias := en.c.Bias && need.b
	if need.w {
		dw = en.newIvec(lenW)
		return dw, concat(en.wgrad(dout, in, nOut, nIn, bias, dw, at), bias)
	}
	if bias {
		return ivec{}, concat(en.wgradBias(dout, nOut, true), true)
	}
	return ivec{}, ivec{}
}

// allFinite64 reports whether every value of v is finite.
func allFinite64(v []float64) bool {
	for _, x := range v {
		if !finite(x) {
			return false
		}
	}
	return true
}

// weightZeroRows is weightRows(h2, out, lo, hi, 0) for an h2 that is +0 with radius 0 on rows
// [lo, hi) (the sentinel tail, mask C): each element is weighted(+0, the row's routing
// weight), a pure function of the weight, derived once per run of rows with the same weight
// (bits) and copied to their elements (TestWeightZeroRowsSameAsWeightRows).
func (en *encl) weightZeroRows(out ivec, lo, hi int) {
	H := en.H
	var w0, x rv
	for i := lo; i < hi; i++ {
		w := en.rowWeight(i)
		if i == lo || math.Float64bits(w.v) != math.Float64bits(w0.v) || math.Float64bits(w.e) != math.Float64bits(w0.e) {
			w0, x = w, en.weighted(rv{}, w)
		}
		for k := i * H; k < (i+1)*H; k++ {
			out.c[k], out.r[k] = x.v, x.e
		}
	}
}

// newEnclRows is newEnclIn(c, p, ar, ws, nil) without the experts' weight matrices (w1s and
// w2s nil; in the transposed layout newEnclIn copies every expert's weights into them): for
// rankEnclosureValid, which runs no GEMM over the weights — the rows that read them are copied.
func newEnclRows(c *moe.Case, p *moe.Plan, ar *arena, ws *workspace) *encl {
	en := &encl{c: c, d: c.DType, p: p, S: c.S(), T: c.T, H: c.H, I: c.I, E: c.E, K: c.K, R: p.Rows, ws: ws, ar: ar,
		sp: par.New(0, 0)}
	return en.withTokens()
}
