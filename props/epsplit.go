package props

import (
	"context"
	"fmt"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/moe"
)

// epSplitSum: splitting the experts over W ranks and summing the ranks' outputs gives the
// unsplit (W = 1) output: Σ_r y_r ≈ y, Σ_r dX_r ≈ dX, Σ_r d_rw_r ≈ d_rw (each slot is owned by
// exactly one rank), and each rank's weight gradients are its slice of the unsplit ones
// (bitwise where the contract promises bitwise reruns and batch invariance, else within the
// derived bound). The judgement and its bounds are oracle.CompareSplitSumUnder's, every
// enclosure derived under the environment's contract.
var epSplitSum = Property{
	Name:    "ep-split-sum",
	Doc:     "the W ranks' outputs sum to the unsplit output within the derived bound; each rank's weight gradients are its slice of the unsplit ones (bitwise where the contract promises it)",
	Applies: func(c *moe.Case) bool { return c.EP.WorldSize() > 1 && !c.NonFinite },
	// the sums are always judged within the derived bound; the slices bitwise only under it
	Promise:    promiseBatchInvariant,
	PromiseDoc: "bitwise reruns and batch invariance (the weight-gradient slices)",
	Check: func(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
		c, poison := t.Case, t.Poison
		const name = "ep-split-sum"
		if n := splitElements(c.Config); n > EPSplitMaxElements {
			// a real-shape rank (Qwen3-30B-A3B EP-8: 128 experts of 2048×768) unsplits into the
			// whole layer: every expert's weights twice (the unsplit case and the W ranks),
			// then their runs and enclosures; at T=128 that ran out of 24 GB
			return nil, &gpu.UnsupportedError{Reason: fmt.Sprintf(
				"the unsplit layer and its %d ranks hold %d values, over the property's budget of %d (EPSplitMaxElements)",
				c.EP.WorldSize(), n, int64(EPSplitMaxElements))}
		}
		unsplit, ranks, err := SplitCases(c)
		if err != nil {
			return nil, err
		}
		all := append([]*moe.Case{unsplit}, ranks...)
		res := make([]*gpu.Result, len(all))
		for i, cc := range all {
			r, o, err := env.runOutputs(ctx, name, cc, poison, 13) // outputs only: the split sum reads no stages
			if o != nil || err != nil {
				return o, err
			}
			res[i] = r
		}
		fs, err := env.checker.CompareSplitSumUnder(env.JudgeContract(), unsplit, res[0], ranks, res[1:])
		if err != nil {
			return nil, err
		}
		if len(fs) > 0 {
			return failed(name, fs, nil, ""), nil
		}
		return pass(name, nil), nil
	},
}

// EPSplitMaxElements bounds the float64 values of the cases ep-split-sum derives from one
// case (the unsplit layer and its W ranks: splitElements); a case over it skips the property
// (counted and named in the check's table), never allocating the layer. 2^26 values are
// 512 MiB of case data, a few GiB with the runs, references and enclosures on top; the
// random distribution's cases stay far below it (at most a few million values).
const EPSplitMaxElements = 1 << 26

// splitElements is the number of float64 values of the cases SplitCases derives from a
// case of config c: the unsplit layer (E·W experts, one rank) and W rank cases like c.
func splitElements(c moe.Config) int64 {
	W := c.EP.WorldSize()
	u := c
	u.E = c.E * W
	u.EP = moe.EP{}
	return u.Elements() + int64(W)*c.Elements()
}

// SplitCases builds, for an EP case c (World W > 1), the unsplit layer (W = 1, E·W experts)
// and the W rank cases that together compute it: same tokens, hidden states and dY; the
// unsplit weights of rank c.EP.Rank's experts are c's, the others' are drawn from a seed; the
// routing is c's global routing (or, without one, c's local routing with each sentinel slot
// sent to a seeded expert of another rank with a seeded weight), mapped to each rank.
func SplitCases(c *moe.Case) (*moe.Case, []*moe.Case, error) {
	// c's values are every rank's X and dY and rank r0's weights: checked once here, as the
	// ranks hold them (without NonFinite); the ranks' other weights are Generate's (dtype
	// values, finite). So each rank's Validate reduces to its config and routing
	// (TestSplitCasesSameAsBefore checks that every case passes Validate).
	cv := *c
	cv.NonFinite = false
	if err := cv.Validate(moe.Limits{}); err != nil {
		return nil, nil, fmt.Errorf("props: split: %w", err)
	}
	W, E, K := c.EP.WorldSize(), c.E, c.K
	if W <= 1 {
		return nil, nil, fmt.Errorf("props: split: world size %d: a split needs at least 2 ranks", W)
	}
	G := E * W
	ucfg := c.Config
	ucfg.EP = moe.EP{}
	ucfg.E = G
	g := c.Global
	if g == nil {
		g = &moe.GlobalRouting{IDs: make([]int64, c.S()), Weights: make([]float64, c.S())}
		rng := moe.NewRand(uint64(c.S())*31 + uint64(G))
		for s, id := range c.Routing.IDs {
			if id != int32(E) {
				g.IDs[s] = int64(c.EP.Rank*E) + int64(id)
				g.Weights[s] = c.Routing.Weights[s]
				continue
			}
			other := (c.EP.Rank + 1 + rng.IntN(W-1)) % W
			g.IDs[s] = int64(other*E + rng.IntN(E))
			g.Weights[s] = c.DType.Round(1 - rng.Float64())
		}
	}
	ur, err := moe.FromGlobal(ucfg, g.IDs, g.Weights, moe.GlobalOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("props: split: %w", err)
	}
	u, err := moe.Generate(ucfg, ur, uint64(G)*977+uint64(K), moe.Normal)
	if err != nil {
		return nil, nil, fmt.Errorf("props: split: %w", err)
	}
	copy(u.X, c.X)
	copy(u.DY, c.DY)
	// Expert blocks are the outermost dimension in both layouts: rank r's experts are a
	// contiguous slice of each weight tensor.
	blk := func(n int) int { return n / E }
	r0 := c.EP.Rank
	copy(u.W1[r0*E*blk(c.LenW1()):], c.W1)
	copy(u.W2[r0*E*blk(c.LenW2()):], c.W2)
	if c.Bias {
		copy(u.B1[r0*E*blk(c.LenB1()):], c.B1)
		copy(u.B2[r0*E*blk(c.LenB2()):], c.B2)
	}
	ranks, err := epsplit.Ranks(u, c.Config, W, g.IDs, g.Weights, moe.GlobalOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("props: split %w", err)
	}
	for r, rc := range ranks {
		if err := rc.ValidateRouting(moe.Limits{}); err != nil {
			return nil, nil, fmt.Errorf("props: split rank %d: %w", r, err)
		}
	}
	return u, ranks, nil
}
