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

// SplitShape is the shape of the seed-th split of the split tests (reference and oracle):
// a small config (T ≤ 12, H ≤ 20, I ≤ 12, E ≤ 3, K ≤ 4) cycling through the dtypes,
// activations, layouts and biases with the seed, its world size W (2 to 4), and a data mode.
func SplitShape(seed uint64) (cfg moe.Config, W int, mode moe.DataMode) {
	rng := moe.NewRand(seed)
	cfg = moe.Config{T: 1 + rng.IntN(12), H: 1 + rng.IntN(20), I: 1 + rng.IntN(12), E: 1 + rng.IntN(3), K: 1 + rng.IntN(4),
		DType: []moe.DType{moe.BF16, moe.FP16, moe.FP32}[seed%3], Act: []moe.Activation{moe.SwiGLU, moe.GptOss}[seed/3%2],
		Layout: []moe.Layout{moe.Standard, moe.Transposed}[seed/6%2], Bias: seed/12%2 == 1}
	W = 2 + rng.IntN(3)
	return cfg, W, []moe.DataMode{moe.Normal, moe.Integer, moe.Large, moe.Subnormal}[seed%4]
}
