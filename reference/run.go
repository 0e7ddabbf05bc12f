package reference

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"

	"github.com/moecheck/moecheck/moe"
)

// Run validates c (against opts.Limits) and computes its float64 truth: the forward output
// Y and, for the upstream gradient c.DY, every gradient (see the package doc).
func Run(c *moe.Case, opts Options) (*Result, error) { return run(c, opts, false, false) }

// Magnitude validates c and computes the magnitude pass: the same computation on absolute
// values, giving for every element of every tensor (and stage) a bound M ≥ |exact value|
// that is the sum of the magnitudes of the terms forming it (see the package doc).
func Magnitude(c *moe.Case, opts Options) (*Result, error) { return run(c, opts, true, false) }

// run is Run (mag false) or Magnitude (mag true). With poison, the tests' hook, every
// expert's row buffers are NaN-filled before it runs, proving no stale value is read.
func run(c *moe.Case, opts Options, mag, poison bool) (*Result, error) {
	return runSplit(c, opts, mag, poison, newSplit(0, 0))
}

// runSplit is run with its loops split as sp says (the tests' hook for a single-goroutine run).
// The GEMMs are gonum's Dgemm, which splits C into 64×64 blocks over GOMAXPROCS goroutines
// by itself (its result does not depend on how many); sp splits the reference's own loops
// (gather, activation, combine, scatter, the magnitude pass's |W|, and the IEEE fallback
// GEMM) over rows or, where rows share outputs, over columns.
func runSplit(c *moe.Case, opts Options, mag, poison bool, sp split) (*Result, error) {
	if err := c.Validate(opts.Limits); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	p, err := c.Plan()
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	return runValid(c, p, opts.Stages, mag, poison, opts.NoWeightGrads, sp, nil), nil
}

// runValid is runSplit for a case c already validated, with its plan p. With noWG the weight
// gradients DW1 and DW2 are neither computed nor allocated (nil; their GEMMs are a third of
// the work). also[e], where set, lists results of other cases to which expert e's rows add
// their combine and scatter as well (RunSplit's ranks: their Y and DX).
func runValid(c *moe.Case, p *moe.Plan, stages, mag, poison, noWG bool, sp split, also [][]*Result) *Result {
	cfg := c.Config
	res := &Result{
		Y:    make([]float64, cfg.LenX()),
		DX:   make([]float64, cfg.LenX()),
		DRW:  make([]float64, cfg.S()),
		Plan: p,
	}
	if !noWG {
		res.DW1 = make([]float64, cfg.LenW1())
		res.DW2 = make([]float64, cfg.LenW2())
	}
	if cfg.Bias {
		res.DB1 = make([]float64, cfg.LenB1())
		res.DB2 = make([]float64, cfg.LenB2())
	}
	x := &exec{c: c, p: p, res: res, act: activation{kind: cfg.Act, mag: mag}, mag: mag, ieee: c.NonFinite, poison: poison, par: sp,
		noWG: noWG, also: also}
	x.alloc(stages)
	for e := 0; e < cfg.E; e++ {
		if b, end := p.Begin(e), p.End(e); end > b {
			x.expert(e, b, end)
		}
	}
	if stages {
		x.tail()
	}
	return res
}

// exec is one Run: the case, its plan, the result being filled and the row buffers.
// Without stages the buffers hold the rows of one expert at a time (the largest expert's
// count); with stages they are the S-row stage tensors and each expert works in its rows.
type exec struct {
	c      *moe.Case
	p      *moe.Plan
	res    *Result
	act    activation
	mag    bool // magnitude pass: inputs read as absolute values
	ieee   bool // operands may be non-finite: IEEE GEMM fallback
	poison bool // NaN-fill each expert's row buffers first (tests)
	par    split
	noWG   bool        // DW1 and DW2 not computed (runValid)
	also   [][]*Result // per expert, more results its rows combine and scatter into (runValid)

	cur expertRows // the expert being computed, for the split loops

	stages                                bool
	xs, h1, act2, h2, dh2, dact, dh1, dxs []float64
	o, do, drw                            []float64 // stages only
	w1abs, w2abs                          []float64 // one expert's |W1|, |W2| (magnitude pass)
}

func (x *exec) alloc(stages bool) {
	cfg := x.c.Config
	rows := cfg.S()
	if !stages {
		rows = 0
		for _, n := range x.p.Counts {
			rows = max(rows, int(n))
		}
	}
	H, I := cfg.H, cfg.I
	x.stages = stages
	x.xs, x.h2, x.dh2, x.dxs = make([]float64, rows*H), make([]float64, rows*H), make([]float64, rows*H), make([]float64, rows*H)
	x.h1, x.dh1 = make([]float64, rows*2*I), make([]float64, rows*2*I)
	x.act2, x.dact = make([]float64, rows*I), make([]float64, rows*I)
	if stages {
		x.o, x.do, x.drw = make([]float64, rows*H), make([]float64, rows*H), make([]float64, rows)
		x.res.Stages = &Stages{Xs: x.xs, H1: x.h1, Act: x.act2, H2: x.h2, O: x.o, DO: x.do, DRW: x.drw,
			DH2: x.dh2, DAct: x.dact, DH1: x.dh1, DXs: x.dxs}
	}
	if x.mag {
		x.w1abs, x.w2abs = make([]float64, 2*I*H), make([]float64, I*H)
	}
}

// val reads an input value: itself, or its absolute value in the magnitude pass.
func (x *exec) val(v float64) float64 {
	if x.mag {
		return math.Abs(v)
	}
	return v
}

// expertRows is the expert being computed: its index, its sorted rows [b, b+n) and its
// row buffers (n rows each).
type expertRows struct {
	e, b, n                              int
	w1, w2                               []float64
	y, dx                                []float64 // the combine's and the scatter's destination
	xs, h1, act, h2, dh2, dact, dh1, dxs []float64
}

// expert computes forward and backward for expert e's sorted rows [b, end).
func (x *exec) expert(e, b, end int) {
	c, res := x.c, x.res
	H, I := c.H, c.I
	I2 := 2 * I
	n := end - b
	base := 0 // first buffer row of this expert
	if x.stages {
		base = b
	}
	rows := func(buf []float64, w int) []float64 { return buf[base*w : (base+n)*w] }
	xs, h1, act, h2 := rows(x.xs, H), rows(x.h1, I2), rows(x.act2, I), rows(x.h2, H)
	dh2, dact, dh1, dxs := rows(x.dh2, H), rows(x.dact, I), rows(x.dh1, I2), rows(x.dxs, H)
	if x.poison {
		for _, buf := range [][]float64{xs, h1, act, h2, dh2, dact, dh1, dxs} {
			for i := range buf {
				buf[i] = math.NaN()
			}
		}
	}

	w1 := c.W1[e*I2*H : (e+1)*I2*H]
	w2 := c.W2[e*H*I : (e+1)*H*I]
	if x.mag {
		parFor(x.par, len(w1), 1, [2][]float64{x.w1abs, w1}, absRange)
		parFor(x.par, len(w2), 1, [2][]float64{x.w2abs, w2}, absRange)
		w1, w2 = x.w1abs, x.w2abs
	}
	x.cur = expertRows{e: e, b: b, n: n, w1: w1, w2: w2, xs: xs, h1: h1, act: act, h2: h2, dh2: dh2, dact: dact, dh1: dh1, dxs: dxs,
		y: res.Y, dx: res.DX}
	var also []*Result
	if x.also != nil {
		also = x.also[e]
	}
	var dw1, dw2 []float64
	if !x.noWG {
		dw1 = res.DW1[e*I2*H : (e+1)*I2*H]
		dw2 = res.DW2[e*H*I : (e+1)*H*I]
	}
	std := c.Layout == moe.Standard
	N, T := blas.NoTrans, blas.Trans

	// Gather (step 4).
	parFor(x.par, n, H, x, (*exec).gatherRows)
	// GEMM 1 (step 5): h1 = xs·W1[e]ᵀ + B1[e]; W1[e] is 2I×H (standard) or H×2I.
	if std {
		x.gemm(N, T, n, I2, H, xs, H, w1, H, 0, h1, I2)
	} else {
		x.gemm(N, N, n, I2, H, xs, H, w1, I2, 0, h1, I2)
	}
	if c.Bias {
		addRows(h1, c.B1[e*I2:(e+1)*I2], x.mag)
	}
	// Activation (step 6).
	parFor(x.par, n, 4*I, x, (*exec).activateRows)
	// GEMM 2 (step 7): h2 = act·W2[e]ᵀ + B2[e]; W2[e] is H×I (standard) or I×H.
	if std {
		x.gemm(N, T, n, H, I, act, I, w2, I, 0, h2, H)
	} else {
		x.gemm(N, N, n, H, I, act, I, w2, H, 0, h2, H)
	}
	if c.Bias {
		addRows(h2, c.B2[e*H:(e+1)*H], x.mag)
	}
	// Weight and combine (steps 8, 9); routing-weight gradient and d_h2 (steps 10–12). The
	// combine adds into Y rows that several of the expert's rows may share (duplicate ids), so
	// it is split by columns, each column summing the rows in order.
	parFor(x.par, n, 2*H, x, (*exec).weightRows)
	parFor(x.par, H, n, x, (*exec).combineCols)
	for _, o := range also { // the same additions, in the same order, into o's Y
		x.cur.y = o.Y
		parFor(x.par, H, n, x, (*exec).combineCols)
	}
	// GEMM 2 dgrad (step 13) and wgrad (step 14). The weight gradients are fresh zeros and
	// each expert's block is written once, so the wgrads accumulate onto them (beta 1).
	if std {
		x.gemm(N, N, n, I, H, dh2, H, w2, I, 0, dact, I)
		if !x.noWG {
			x.gemm(T, N, H, I, n, dh2, H, act, I, 1, dw2, I) // dW2[e] (H×I) = d_h2ᵀ·act
		}
	} else {
		x.gemm(N, T, n, I, H, dh2, H, w2, H, 0, dact, I)
		if !x.noWG {
			x.gemm(T, N, I, H, n, act, I, dh2, H, 1, dw2, H) // dW2[e] (I×H) = actᵀ·d_h2
		}
	}
	if c.Bias {
		sumRows(res.DB2[e*H:(e+1)*H], dh2)
	}
	// Activation backward (step 15).
	parFor(x.par, n, 8*I, x, (*exec).activateBackwardRows)
	// GEMM 1 dgrad (step 16) and wgrad (step 17).
	if std {
		x.gemm(N, N, n, H, I2, dh1, I2, w1, H, 0, dxs, H)
		if !x.noWG {
			x.gemm(T, N, I2, H, n, dh1, I2, xs, H, 1, dw1, H) // dW1[e] (2I×H) = d_h1ᵀ·xs
		}
	} else {
		x.gemm(N, T, n, H, I2, dh1, I2, w1, I2, 0, dxs, H)
		if !x.noWG {
			x.gemm(T, N, H, I2, n, xs, H, dh1, I2, 1, dw1, I2) // dW1[e] (H×2I) = xsᵀ·d_h1
		}
	}
	if c.Bias {
		sumRows(res.DB1[e*I2:(e+1)*I2], dh1)
	}
	// Scatter-add (step 18), by columns like the combine.
	parFor(x.par, H, n, x, (*exec).scatterCols)
	for _, o := range also { // the same additions, in the same order, into o's DX
		x.cur.dx = o.DX
		parFor(x.par, H, n, x, (*exec).scatterCols)
	}
}

// absRange sets a[0][i] = |a[1][i]| for i in [lo, hi).
func absRange(a [2][]float64, lo, hi int) {
	for i, v := range a[1][lo:hi] {
		a[0][lo+i] = math.Abs(v)
	}
}

// gatherRows is the gather (step 4) of the current expert's rows [lo, hi).
func (x *exec) gatherRows(lo, hi int) {
	c, cur := x.c, &x.cur
	H, K := c.H, c.K
	for r := lo; r < hi; r++ {
		t := int(x.p.Perm[cur.b+r]) / K
		dst, src := cur.xs[r*H:(r+1)*H], c.X[t*H:(t+1)*H]
		for h, v := range src {
			dst[h] = x.val(v)
		}
	}
}

// activateRows is the activation (step 6) of the current expert's rows [lo, hi).
func (x *exec) activateRows(lo, hi int) {
	c, cur := x.c, &x.cur
	I, I2 := c.I, 2*c.I
	for r := lo; r < hi; r++ {
		hr, ar := cur.h1[r*I2:(r+1)*I2], cur.act[r*I:(r+1)*I]
		for j := range ar {
			ar[j] = x.act.forward(hr[c.GateCol(j)], hr[c.UpCol(j)])
		}
	}
}

// weightRows computes, for the current expert's rows [lo, hi), the routing-weight gradient
// DRW = Σ_h dY·h2, d_h2 = rw·dY and, with stages, o = rw·h2 and d_o = dY.
func (x *exec) weightRows(lo, hi int) {
	c, res, cur := x.c, x.res, &x.cur
	H, K := c.H, c.K
	for r := lo; r < hi; r++ {
		i := cur.b + r
		s := int(x.p.Perm[i])
		t := s / K
		w := x.val(c.Routing.Weights[s])
		hr := cur.h2[r*H : (r+1)*H]
		dy, dr := c.DY[t*H:(t+1)*H], cur.dh2[r*H:(r+1)*H]
		var drw float64
		for h, v := range hr {
			g := x.val(dy[h])
			drw += g * v
			dr[h] = w * g
		}
		res.DRW[s] = drw
		if x.stages {
			o, do := x.o[i*H:(i+1)*H], x.do[i*H:(i+1)*H]
			for h, v := range hr {
				o[h] = w * v
				do[h] = x.val(dy[h])
			}
			x.drw[i] = drw
		}
	}
}

// combineCols adds the current expert's weighted rows into Y (step 9; cur.y) on columns
// [lo, hi), the rows in order.
func (x *exec) combineCols(lo, hi int) {
	c, cur := x.c, &x.cur
	H, K := c.H, c.K
	for r := 0; r < cur.n; r++ {
		s := int(x.p.Perm[cur.b+r])
		t := s / K
		w := x.val(c.Routing.Weights[s])
		hr, y := cur.h2[r*H+lo:r*H+hi], cur.y[t*H+lo:t*H+hi]
		for h, v := range hr {
			y[h] += w * v
		}
	}
}

// activateBackwardRows is the activation backward (step 15) of the current expert's rows
// [lo, hi).
func (x *exec) activateBackwardRows(lo, hi int) {
	c, cur := x.c, &x.cur
	I, I2 := c.I, 2*c.I
	for r := lo; r < hi; r++ {
		hr, dr, da := cur.h1[r*I2:(r+1)*I2], cur.dh1[r*I2:(r+1)*I2], cur.dact[r*I:(r+1)*I]
		for j, d := range da {
			gc, uc := c.GateCol(j), c.UpCol(j)
			dr[gc], dr[uc] = x.act.backward(hr[gc], hr[uc], d)
		}
	}
}

// scatterCols adds the current expert's d_xs rows into DX (step 18; cur.dx) on columns
// [lo, hi), the rows in order.
func (x *exec) scatterCols(lo, hi int) {
	c, cur := x.c, &x.cur
	H, K := c.H, c.K
	for r := 0; r < cur.n; r++ {
		t := int(x.p.Perm[cur.b+r]) / K
		dx, src := cur.dx[t*H+lo:t*H+hi], cur.dxs[r*H+lo:r*H+hi]
		for h, v := range src {
			dx[h] += v
		}
	}
}

// tail fills the stages' sentinel-tail rows that are not zero: d_o, gathered for all rows.
func (x *exec) tail() {
	c := x.c
	H := c.H
	for i := x.p.Rows; i < c.S(); i++ {
		t := int(x.p.Perm[i]) / c.K
		do, dy := x.do[i*H:(i+1)*H], c.DY[t*H:(t+1)*H]
		for h, v := range dy {
			do[h] = x.val(v)
		}
	}
}

// addRows adds bias (absolute values with mag) to every row of m (rows of len(bias)).
func addRows(m, bias []float64, mag bool) {
	w := len(bias)
	for r := 0; r < len(m); r += w {
		row := m[r : r+w]
		for j, b := range bias {
			if mag {
				b = math.Abs(b)
			}
			row[j] += b
		}
	}
}

// sumRows sets dst to the column sums of m (rows of len(dst)).
func sumRows(dst, m []float64) {
	w := len(dst)
	for r := 0; r < len(m); r += w {
		for j, v := range m[r : r+w] {
			dst[j] += v
		}
	}
}
