package reference

import (
	"fmt"

	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/moe"
)

// The references of an expert-parallel split in one pass (issue 14, "cheaper properties").
// Rank r of a split with E experts per rank computes, for each of its experts e, exactly the
// rows the unsplit layer's expert r·E+e computes (epsplit.Rows): the same inputs, weights and
// routing weights, the same GEMM calls (same shapes, same operands: gonum's Dgemm gives the
// same bits for them) and the same row kernels, so every per-row and per-expert value of the
// rank's Run is the unsplit Run's. What is the rank's own is what sums over a token's slots:
// Y and DX, which its Run accumulates from +0, expert by expert in order, each expert's rows
// in order — the unsplit Run adds the same rows in the same order into the rank's own Y and
// DX while it computes them. So each expert's rows are computed once for the W + 1 results
// instead of twice (TestRunSplitSameAsRun compares every tensor, bitwise, with Run's).

// SplitResult holds RunSplit's results. A rank's DW1, DW2, DB1 and DB2 share Whole's memory
// (they are its blocks of Whole's): read them only.
type SplitResult struct {
	Whole     *Result   // Run(whole)
	Magnitude *Result   // Magnitude(whole)
	Ranks     []*Result // Run(ranks[r])
	// Split[r] says whether ranks[r] is a rank of whole's split (epsplit.Rows held): its
	// result was made from whole's computation.
	Split []bool
}

// RunSplit validates whole and every case of ranks (against opts.Limits) and computes
// Run(whole), Magnitude(whole) and Run(ranks[r]) for each r, under opts: the same bits as
// those calls (opts.Stages is refused: RunSplit computes no stages). Where ranks[r] is rank
// ranks[r].EP.Rank of the split whose unsplit layer is whole (epsplit.Rows), its result is
// made from whole's computation (see above); any other case is run on its own.
func RunSplit(whole *moe.Case, ranks []*moe.Case, opts Options) (*SplitResult, error) {
	if opts.Stages {
		return nil, fmt.Errorf("reference: RunSplit computes no stages (Options.Stages is set)")
	}
	if err := whole.Validate(opts.Limits); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	wp, err := whole.Plan()
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	plans := make([]*moe.Plan, len(ranks))
	shared := make([]bool, len(ranks))
	for k, rc := range ranks {
		// rc.Validate, checking rc's values only where they are not whole's (epsplit.Rows)
		p, ok, err := epsplit.ValidateRank(whole, wp, rc, opts.Limits)
		if err != nil {
			return nil, fmt.Errorf("reference: rank case %d: %w", k, err)
		}
		plans[k], shared[k] = p, ok
	}
	sp := newSplit(0, 0)
	out := &SplitResult{Ranks: make([]*Result, len(ranks)), Split: shared}
	also := make([][]*Result, whole.E) // per expert of whole, the rank results its rows add into
	for k, rc := range ranks {
		if !shared[k] {
			continue
		}
		res := &Result{Y: make([]float64, rc.LenX()), DX: make([]float64, rc.LenX()), DRW: make([]float64, rc.S()), Plan: plans[k]}
		out.Ranks[k] = res
		for e := 0; e < rc.E; e++ {
			g := rc.EP.Rank*rc.E + e
			also[g] = append(also[g], res)
		}
	}
	noWG := opts.NoWeightGrads
	out.Whole = runValid(whole, wp, false, false, false, noWG, sp, also)
	for k, rc := range ranks {
		if !shared[k] {
			out.Ranks[k] = runValid(rc, plans[k], false, false, false, noWG, sp, nil)
			continue
		}
		res, w, p := out.Ranks[k], out.Whole, plans[k]
		// d_rw of a real row is its slot's (one row per slot): whole's; the rank's sentinel
		// slots are +0, as its Run leaves them
		for _, s := range p.Perm[:p.Rows] {
			res.DRW[s] = w.DRW[s]
		}
		// the gradients of expert e are accumulated from +0 by its rows alone: whole's expert
		// r·E+e's, the block of whole's tensor
		blk := func(full []float64, n int) []float64 {
			if full == nil {
				return nil
			}
			r := rc.EP.Rank
			return full[r*n : (r+1)*n : (r+1)*n]
		}
		res.DW1, res.DW2 = blk(w.DW1, rc.LenW1()), blk(w.DW2, rc.LenW2())
		if rc.Bias {
			res.DB1, res.DB2 = blk(w.DB1, rc.LenB1()), blk(w.DB2, rc.LenB2())
		}
	}
	out.Magnitude = runValid(whole, wp, false, true, false, noWG, sp, nil)
	return out, nil
}
