package epsplit

import (
	"fmt"

	"github.com/moecheck/moecheck/moe"
)

// Ranks builds the W rank cases of an unsplit layer u (E·W experts, one rank) over the global
// routing (ids, weights, opts) u was built from: rank r has config cfg (E local experts) with
// EP {W, r}, its routing mapped from the global one, copies of u's X and dY, and rank r's
// contiguous slice of every weight and bias tensor (expert blocks are the outermost dimension
// in both layouts). It is the split ep-split-sum checks (props.SplitCases) and the tests of
// the reference and oracle build. An error names the rank whose routing could not be mapped.
func Ranks(u *moe.Case, cfg moe.Config, W int, ids []int64, weights []float64, opts moe.GlobalOptions) ([]*moe.Case, error) {
	ranks := make([]*moe.Case, W)
	for r := range ranks {
		rcfg := cfg
		rcfg.EP = moe.EP{World: W, Rank: r}
		rr, err := moe.FromGlobal(rcfg, ids, weights, opts)
		if err != nil {
			return nil, fmt.Errorf("rank %d: %w", r, err)
		}
		slice := func(full []float64) []float64 {
			if full == nil {
				return nil
			}
			n := len(full) / W
			return append([]float64(nil), full[r*n:(r+1)*n]...)
		}
		ranks[r] = &moe.Case{Config: rcfg, Routing: rr, X: append([]float64(nil), u.X...), DY: append([]float64(nil), u.DY...),
			W1: slice(u.W1), W2: slice(u.W2), B1: slice(u.B1), B2: slice(u.B2)}
	}
	return ranks, nil
}
