package epsplit

import (
	"math"

	"github.com/moecheck/moecheck/internal/f64bits"
	"github.com/moecheck/moecheck/moe"
)

// Rows reports whether case rank is rank rank.EP.Rank of the expert-parallel split whose
// unsplit layer (World 1, E·W experts) is whole, and if so returns, for each of rank's sorted
// rows below rp.Rows, the sorted row of whole that computes the same thing (wp and rp are the
// cases' plans). It is the condition under which every per-row and per-expert quantity of
// rank's real rows — the float64 reference's and the oracle's enclosures' — is whole's, bit
// for bit: the same config but for E and EP (and the same NonFinite), the same X and dY, rank
// r's block of whole's weights and biases, and for each expert e of rank the rows of whole's
// expert r·E+e — the same slots in the same order with the same routing weights. A rank's
// sentinel slots (the other ranks') are not compared: no real row reads them. Both cases must
// be valid (Validate).
func Rows(whole, rank *moe.Case, wp, rp *moe.Plan) ([]int, bool) {
	W, r, E := rank.EP.WorldSize(), rank.EP.Rank, rank.E
	uw, rw := whole.Config, rank.Config
	uw.E, uw.EP, rw.E, rw.EP = 0, moe.EP{}, 0, moe.EP{}
	if uw != rw || whole.NonFinite != rank.NonFinite || W <= 1 || whole.EP.WorldSize() != 1 || whole.E != E*W || r < 0 || r >= W {
		return nil, false
	}
	if wp == nil || rp == nil || wp.E != whole.E || rp.E != E || len(wp.Perm) != whole.S() || len(rp.Perm) != rank.S() {
		return nil, false
	}
	// the inputs of every row: the whole X and dY, rank r's block of the weights and biases
	blk := func(full, part []float64) bool {
		n := len(part)
		return len(full) == W*n && f64bits.Equal(full[r*n:(r+1)*n], part)
	}
	if !f64bits.Equal(whole.X, rank.X) || !f64bits.Equal(whole.DY, rank.DY) || !blk(whole.W1, rank.W1) || !blk(whole.W2, rank.W2) ||
		(rank.Bias && (!blk(whole.B1, rank.B1) || !blk(whole.B2, rank.B2))) {
		return nil, false
	}
	return RowMap(whole, rank, wp, rp)
}

// RowMap is the part of Rows that reads the routing alone: for each of rank's
// sorted rows below rp.Rows, the row of whole that holds the same slot with the same routing
// weight, its expert rank.EP.Rank·E+e for rank's expert e, at the same position among that
// expert's rows (nil, false where there is none). It is Rows for a caller that knows its
// other conditions hold (the configs and the inputs: reference.SplitResult.Split says so for
// the cases RunSplit compared).
func RowMap(whole, rank *moe.Case, wp, rp *moe.Plan) ([]int, bool) {
	r, E := rank.EP.Rank, rank.E
	if wp == nil || rp == nil || rp.E != E || wp.E < (r+1)*E || r < 0 || rank.S() != whole.S() ||
		len(wp.Perm) != whole.S() || len(rp.Perm) != rank.S() {
		return nil, false
	}
	m := make([]int, rp.Rows)
	for e := 0; e < E; e++ {
		b, end := rp.Begin(e), rp.End(e)
		ub, uend := wp.Begin(r*E+e), wp.End(r*E+e)
		if end-b != uend-ub {
			return nil, false
		}
		for i := b; i < end; i++ {
			j := ub + i - b
			s := rp.Perm[i]
			if s != wp.Perm[j] || math.Float64bits(rank.Routing.Weights[s]) != math.Float64bits(whole.Routing.Weights[s]) {
				return nil, false
			}
			m[i] = j
		}
	}
	return m, true
}

// ValidateRank is rank.Validate(lim) for a case that may be a rank of the expert-parallel
// split whose unsplit layer is whole; whole must be valid (Validate with the same lim), wp its
// plan. It returns rank's plan and whether Rows holds. Where it holds, every value of
// rank's tensors is bit for bit a value of whole's, of the same dtype and NonFinite, so it
// passes the value checks whole passed: only the config, the routing and the tensors'
// presence are checked then (Rows has compared the lengths). Otherwise rank is
// validated in full. The errors are Validate's.
func ValidateRank(whole *moe.Case, wp *moe.Plan, rank *moe.Case, lim moe.Limits) (*moe.Plan, bool, error) {
	if err := rank.ValidateRouting(lim); err != nil {
		return nil, false, err
	}
	rp, err := rank.Plan()
	if err != nil {
		return nil, false, err
	}
	if _, ok := Rows(whole, rank, wp, rp); ok && (rank.Bias || rank.B1 == nil && rank.B2 == nil) {
		return rp, true, nil
	}
	if err := rank.Validate(lim); err != nil {
		return nil, false, err
	}
	return rp, false, nil
}
