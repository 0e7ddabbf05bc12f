package casetest

import (
	"testing"

	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/moe"
)

// Split builds an unsplit layer (cfg with E·W experts and no EP) and its W rank cases (cfg's
// E experts each, rank r with EP{World: W, Rank: r}), as props.SplitCases does: one global
// routing (moe.RandomGlobalRouting of cfg over W ranks, from seed), changed by edit first
// (nil: unchanged), the layer's data drawn from dataSeed in mode, its weights sliced per rank
// (epsplit.Ranks). A failed step fails tb.
func Split(tb testing.TB, cfg moe.Config, W int, seed, dataSeed uint64, mode moe.DataMode, edit func(g *moe.GlobalRouting)) (*moe.Case, []*moe.Case) {
	tb.Helper()
	cfg.EP = moe.EP{World: W}
	_, g, err := moe.RandomGlobalRouting(cfg, seed)
	if err != nil {
		tb.Fatalf("casetest: global routing of %+v over %d ranks, seed %d: %v", cfg, W, seed, err)
	}
	if edit != nil {
		edit(g)
	}
	ucfg := cfg
	ucfg.EP, ucfg.E = moe.EP{}, cfg.E*W
	ur, err := moe.FromGlobal(ucfg, g.IDs, g.Weights, g.Options)
	if err != nil {
		tb.Fatalf("casetest: the unsplit layer's routing (%+v): %v", ucfg, err)
	}
	u, err := moe.Generate(ucfg, ur, dataSeed, mode)
	if err != nil {
		tb.Fatalf("casetest: the unsplit layer's data (%+v, seed %d, %v): %v", ucfg, dataSeed, mode, err)
	}
	ranks, err := epsplit.Ranks(u, cfg, W, g.IDs, g.Weights, g.Options)
	if err != nil {
		tb.Fatalf("casetest: the rank cases of %+v over %d ranks: %v", cfg, W, err)
	}
	return u, ranks
}
