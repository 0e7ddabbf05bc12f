package casetest

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
)

// Case is the random case of cfg drawn from seed: moe.RandomRouting(cfg, seed), then
// moe.Generate with the same seed and Normal data. A failed step fails tb.
func Case(tb testing.TB, cfg moe.Config, seed uint64) *moe.Case {
	tb.Helper()
	return draw(tb, cfg, seed, seed, moe.Normal)
}

// CaseMode is Case with the data drawn in mode.
func CaseMode(tb testing.TB, cfg moe.Config, seed uint64, mode moe.DataMode) *moe.Case {
	tb.Helper()
	return draw(tb, cfg, seed, seed, mode)
}

// CaseSeeds is Case with the routing drawn from routeSeed and the (Normal) data from dataSeed.
func CaseSeeds(tb testing.TB, cfg moe.Config, routeSeed, dataSeed uint64) *moe.Case {
	tb.Helper()
	return draw(tb, cfg, routeSeed, dataSeed, moe.Normal)
}

// draw is the case of cfg with routing from routeSeed and data from dataSeed in mode.
func draw(tb testing.TB, cfg moe.Config, routeSeed, dataSeed uint64, mode moe.DataMode) *moe.Case {
	tb.Helper()
	r, err := moe.RandomRouting(cfg, routeSeed)
	if err != nil {
		tb.Fatalf("casetest: random routing of %v, seed %d: %v", cfg, routeSeed, err)
	}
	c, err := moe.Generate(cfg, r, dataSeed, mode)
	if err != nil {
		tb.Fatalf("casetest: generating %s data of %v, seed %d: %v", mode, cfg, dataSeed, err)
	}
	return c
}

// SimRun is c's run on a fresh gpu/sim backend (zero sim.Options) under opts. A failed run
// fails tb.
func SimRun(tb testing.TB, c *moe.Case, opts gpu.RunOptions) *gpu.Result {
	tb.Helper()
	res, err := sim.New(sim.Options{}).Run(context.Background(), c, opts)
	if err != nil {
		tb.Fatalf("casetest: sim run (%+v): %v", opts, err)
	}
	return res
}
