package oracle

import (
	"fmt"
	"math"
	"slices"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/moe"
)

// The derived verdict (docs/oracle.md §11): a result of a token-permuted case whose
// stage-local units are bitwise the mapped units of a run the oracle judged in full and
// passed gets, for those units, exactly the judgement that run got — so the check takes
// them from it instead of deriving their enclosures again.
//
// Why it is the same judgement. A stage-local comparison judges each element of a stage
// against an enclosure derived from the path's own operand rows of the same sorted row
// (and, for y and dX, the K rows feeding the token; for d_rw, the row's d_o and h2), the
// case's weights and biases of the row's expert, the row's routing weight and its token's
// x or dY. Every one of these enclosure functions is row-local and independent of the
// row's position in its stage (reduceAcc computes each (i, j) from row i of A and row j of
// B alone: its fused loops per element, gonum's Dgemm per element as a sum over the same
// k-blocks, in the same order, for the same m, n and k — an expert has as many rows in a
// permuted case as in the original, so it splits into the same parts, parallel.go; the elementwise stages, the K-slot sums and d_rw per
// row or token), and the statistics a comparison keeps (exact and unknown counts, the
// largest informative ratio, failures) are order-free over its elements. So when every
// value a stage comparison reads in the checked result — the stage itself and its
// operand stages — equals bitwise the mapped value of the judged result, and the cases
// agree on everything else (dimensions, weights, biases, and x, dY and the routing row by
// row under the permutation), every element's enclosure and value are the mapped
// element's, and the comparison counts exactly what the judged run's counted: no failure
// (it passed), the same statistics. Units that differ anywhere are judged as usual; the
// weight and bias gradients, whose sums over an expert's rows run in another order, are
// always judged. With OpenBLAS (build tag openblas) no verdict is derived: its blocked
// kernels give no row-position guarantee (f64gemm.RowExact).

// Derives reports whether this build derives verdicts (Options.Derive): false in the
// openblas build, which judges every unit (f64gemm.RowExact).
const Derives = f64gemm.RowExact

// Judged is a run the oracle judged in full (not sampled), stage-locally, and passed: what a
// later check of a token-permuted run may take judgements from (Options.Derive). Only
// Checker.CheckJudged makes one; it refers to the judged case and result, which must not
// change afterwards (a result whose stages were handed back since, sim.Backend.Recycle, is
// not used).
type Judged struct {
	c     *moe.Case
	r     *gpu.Result
	st    *gpu.Stages // r.Stages when judged
	ct    contract.Contract
	stats []TensorStat // the verdict's statistics when judged (a copy)
}

// Derivation is Options.Derive: the judged run and how the checked case's tokens relate to
// its case's.
type Derivation struct {
	From *Judged
	// Perm: token t of From's case is token Perm[t] of the checked case (a permutation of
	// [0, T)).
	Perm []int
}

// CheckJudged is Check, also returning the run as a Judged when the verdict is a pass of a
// full, stage-local check (nil otherwise): a check of a token-permuted run of the same case
// may then take the units it proves bitwise equal from it (Options.Derive).
func (k *Checker) CheckJudged(c *moe.Case, got *gpu.Result, opts Options) (*Verdict, *Judged, error) {
	v, err := k.Check(c, got, opts)
	if err != nil || !v.Pass || v.Sample != nil || opts.Sample.On() || got == nil || got.Stages == nil || opts.SkipStages {
		return v, nil, err
	}
	return v, &Judged{c: c, r: got, st: got.Stages, ct: opts.Contract, stats: slices.Clone(v.Stats)}, nil
}

// Derived is the number of stage-local comparisons this Checker's checks have taken from
// judged runs (Options.Derive): a count for tests and benchmarks.
func (k *Checker) Derived() int64 { return k.derivedHits.Load() }

// derivedStats is what a check takes from a judged run: per (tensor, stage-local) the
// judged run's statistics, for the units proven equal.
type derivedStats map[statKey]TensorStat

// take reports whether the comparison of t (local: a stage-local output) is taken from the
// judged run, and if so records its statistics in the verdict, in the place the comparison
// would have created them.
func (ck *checker) take(t moe.Tensor, local bool, n int) bool {
	s, ok := ck.dv[statKey{t, local}]
	if !ok {
		return false
	}
	st := ck.stat(t, local, n)
	st.Exact, st.Unknown, st.MaxRatio, st.Failed = s.Exact, s.Unknown, s.MaxRatio, s.Failed
	ck.derivedHits.Add(1)
	return true
}

// validPerm reports a Perm that is not a permutation of [0, T).
func validPerm(perm []int, T int) error {
	if len(perm) != T {
		return fmt.Errorf("oracle: derivation: a permutation of %d tokens for a case of T = %d", len(perm), T)
	}
	seen := make([]bool, T)
	for t, pt := range perm {
		if pt < 0 || pt >= T || seen[pt] {
			return fmt.Errorf("oracle: derivation: perm[%d] = %d: not a permutation of [0, %d)", t, pt, T)
		}
		seen[pt] = true
	}
	return nil
}

// derive returns the comparisons of result res of case c (plan p, its stages' shapes and
// plan already checked) that are taken from the judged run d.From, or nil when none is (the
// run was not judged as CheckJudged says, its stages were handed back, the contracts'
// freedoms differ, or the cases are not one the other's token permutation).
func derive(c *moe.Case, p *moe.Plan, res *gpu.Result, d *Derivation, ct contract.Contract) derivedStats {
	j := d.From
	if !f64gemm.RowExact || j == nil || j.r == nil || j.st == nil || j.r.Stages != j.st || !sameFreedoms(j.ct, ct) {
		return nil
	}
	a, b := j.c, c
	if !tokenPermuted(a, b, d.Perm) {
		return nil
	}
	pa, err := a.Plan()
	if err != nil {
		return nil
	}
	S, K := c.S(), c.K
	// rows[i]: the checked run's sorted row holding the judged run's sorted row i's slot
	rows := make([]int32, S)
	for i, s := range pa.Perm {
		t, k := int(s)/K, int(s)%K
		rows[i] = p.Inv[d.Perm[t]*K+k]
		if pa.Sorted[i] != p.Sorted[rows[i]] {
			return nil // not reached: the routing is mapped slot by slot
		}
	}
	sa, sb := j.st, res.Stages
	for _, t := range moe.StageTensors() {
		if len(sa.Tensor(t)) != c.Len(t) || len(sb.Tensor(t)) != c.Len(t) {
			return nil
		}
	}
	// eqRows: stage t's rows [0, lim) of the judged run equal the checked run's mapped rows,
	// bitwise (NaN payloads included)
	eqRows := func(t moe.Tensor, lim int) bool {
		_, n := c.Shape(t)
		x, y := sa.Tensor(t), sb.Tensor(t)
		for i := 0; i < lim; i++ {
			r := int(rows[i])
			if !bits32Equal(x[i*n:(i+1)*n], y[r*n:(r+1)*n]) {
				return false
			}
		}
		return true
	}
	eq := map[moe.Tensor]bool{}
	for _, t := range moe.StageTensors() {
		eq[t] = eqRows(t, S)
	}
	// d_act's tail rows are left unwritten by the path (poison may differ from run to run):
	// their enclosure is unknown whatever they hold, and no other comparison reads them
	// (act_backward and the weight gradients read rows < R only).
	dactHead := eq[moe.TensorDAct] || eqRows(moe.TensorDAct, p.Rows)
	// eqTokens: an output of row length n by token (y, dX) or by slot (d_rw, n = 1 per slot
	// of K per token), mapped by the permutation
	eqTokens := func(x, y []float32, n int) bool {
		if len(x) != c.T*n || len(y) != c.T*n {
			return false
		}
		for t, pt := range d.Perm {
			if !bits32Equal(x[t*n:(t+1)*n], y[pt*n:(pt+1)*n]) {
				return false
			}
		}
		return true
	}
	H := c.H
	ok := map[statKey]bool{
		{moe.TensorXs, false}:   eq[moe.TensorXs], // reads x (mapped: tokenPermuted)
		{moe.TensorH1, false}:   eq[moe.TensorXs] && eq[moe.TensorH1],
		{moe.TensorAct, false}:  eq[moe.TensorH1] && eq[moe.TensorAct],
		{moe.TensorH2, false}:   eq[moe.TensorAct] && eq[moe.TensorH2],
		{moe.TensorO, false}:    eq[moe.TensorH2] && eq[moe.TensorO], // and the routing weights (mapped)
		{moe.TensorDO, false}:   eq[moe.TensorDO],                    // reads dY (mapped)
		{moe.TensorDH2, false}:  eq[moe.TensorDO] && eq[moe.TensorDH2],
		{moe.TensorDAct, false}: eq[moe.TensorDH2] && dactHead,
		{moe.TensorDH1, false}:  eq[moe.TensorH1] && dactHead && eq[moe.TensorDH1],
		{moe.TensorDXs, false}:  eq[moe.TensorDH1] && eq[moe.TensorDXs],
		{moe.TensorY, true}:     eq[moe.TensorO] && eqTokens(j.r.Y, res.Y, H),
		{moe.TensorDX, true}:    eq[moe.TensorDXs] && eqTokens(j.r.DX, res.DX, H),
		{moe.TensorDRW, true}:   eq[moe.TensorDO] && eq[moe.TensorH2] && eqTokens(j.r.DRW, res.DRW, K),
	}
	out := derivedStats{}
	for _, s := range j.stats {
		k := statKey{s.Tensor, s.Local}
		if ok[k] && s.Failed == 0 && s.Judged == 0 {
			out[k] = s
		}
	}
	return out
}

// tokenPermuted reports whether case b is case a with its tokens permuted (token t of a is
// token perm[t] of b): the same configuration, weights and biases bitwise, and x, dY, the
// routing (ids and weights) and the global routing row by row under perm. Every field of
// moe.Case is compared (TestTokenPermutedFields keeps the list complete).
func tokenPermuted(a, b *moe.Case, perm []int) bool {
	if a.Config != b.Config || a.NonFinite != b.NonFinite || len(perm) != a.T {
		return false
	}
	if !bits64Equal(a.W1, b.W1) || !bits64Equal(a.W2, b.W2) || !bits64Equal(a.B1, b.B1) || !bits64Equal(a.B2, b.B2) {
		return false
	}
	H, K := a.H, a.K
	rows64 := func(x, y []float64, n int) bool {
		if len(x) != a.T*n || len(y) != len(x) {
			return false
		}
		for t, pt := range perm {
			if !bits64Equal(x[t*n:(t+1)*n], y[pt*n:(pt+1)*n]) {
				return false
			}
		}
		return true
	}
	if !rows64(a.X, b.X, H) || !rows64(a.DY, b.DY, H) || !rows64(a.Routing.Weights, b.Routing.Weights, K) {
		return false
	}
	ids := func(x, y []int32) bool {
		if len(x) != a.T*K || len(y) != len(x) {
			return false
		}
		for t, pt := range perm {
			if !slices.Equal(x[t*K:(t+1)*K], y[pt*K:(pt+1)*K]) {
				return false
			}
		}
		return true
	}
	if !ids(a.Routing.IDs, b.Routing.IDs) {
		return false
	}
	switch ga, gb := a.Global, b.Global; {
	case ga == nil && gb == nil:
		return true
	case ga == nil || gb == nil || ga.Options != gb.Options || len(ga.IDs) != a.T*K || len(gb.IDs) != len(ga.IDs):
		return false
	default:
		for t, pt := range perm {
			if !slices.Equal(ga.IDs[t*K:(t+1)*K], gb.IDs[pt*K:(pt+1)*K]) {
				return false
			}
		}
		return rows64(ga.Weights, gb.Weights, K)
	}
}

// bits32Equal reports whether x and y hold the same bits.
func bits32Equal(x, y []float32) bool {
	if len(x) != len(y) {
		return false
	}
	for i, v := range x {
		if math.Float32bits(v) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}

// bits64Equal reports whether x and y hold the same bits (nil and empty are equal).
func bits64Equal(x, y []float64) bool {
	if len(x) != len(y) {
		return false
	}
	if len(x) > 0 && &x[0] == &y[0] {
		return true
	}
	for i, v := range x {
		if math.Float64bits(v) != math.Float64bits(y[i]) {
			return false
		}
	}
	return true
}
