package props_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// splitCasesBefore is SplitCases as it was before it validated c once instead of every
// rank: the recomputing path TestSplitCasesSameAsBefore compares with.
func splitCasesBefore(c *moe.Case) (*moe.Case, []*moe.Case, error) {
	W, E, K := c.EP.WorldSize(), c.E, c.K
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
	ranks := make([]*moe.Case, W)
	for r := 0; r < W; r++ {
		cfg := c.Config
		cfg.EP = moe.EP{World: W, Rank: r}
		rr, err := moe.FromGlobal(cfg, g.IDs, g.Weights, moe.GlobalOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("props: split rank %d: %w", r, err)
		}
		slice := func(full []float64, n int) []float64 {
			if full == nil {
				return nil
			}
			return append([]float64(nil), full[r*n:(r+1)*n]...)
		}
		rc := &moe.Case{Config: cfg, Routing: rr, X: append([]float64(nil), c.X...), DY: append([]float64(nil), c.DY...),
			W1: slice(u.W1, c.LenW1()), W2: slice(u.W2, c.LenW2()), B1: slice(u.B1, c.LenB1()), B2: slice(u.B2, c.LenB2())}
		if err := rc.Validate(moe.Limits{}); err != nil {
			return nil, nil, fmt.Errorf("props: split rank %d: %w", r, err)
		}
		ranks[r] = rc
	}
	return u, ranks, nil
}

// sameCase reports the first part in which two cases differ (config, routing, global
// routing, a tensor bit for bit, NonFinite), or "".
func sameCase(a, b *moe.Case) string {
	bits := func(x, y []float64) bool {
		if len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	}
	switch {
	case a.Config != b.Config:
		return "config"
	case a.NonFinite != b.NonFinite:
		return "NonFinite"
	case fmt.Sprint(a.Routing.IDs) != fmt.Sprint(b.Routing.IDs) || !bits(a.Routing.Weights, b.Routing.Weights):
		return "routing"
	case (a.Global == nil) != (b.Global == nil) || a.Global != nil && (fmt.Sprint(a.Global.IDs) != fmt.Sprint(b.Global.IDs) ||
		!bits(a.Global.Weights, b.Global.Weights) || a.Global.Options != b.Global.Options):
		return "global routing"
	}
	for _, t := range []struct {
		name string
		x, y []float64
	}{{"X", a.X, b.X}, {"W1", a.W1, b.W1}, {"W2", a.W2, b.W2}, {"B1", a.B1, b.B1}, {"B2", a.B2, b.B2}, {"DY", a.DY, b.DY}} {
		if !bits(t.x, t.y) {
			return t.name
		}
	}
	return ""
}

// TestSplitCasesSameAsBefore: SplitCases gives, bit for bit, the unsplit layer and rank cases
// it gave when it validated each rank — over
// the EP cases of the default distribution (seeds 3 and 5, with and without a global
// routing, every dtype, layout, bias and data mode it draws) — and every case it returns
// passes Validate.
func TestSplitCasesSameAsBefore(t *testing.T) {
	n := 0
	global := 0
	for _, seed := range []uint64{3, 5} {
		for i := 0; i < 400; i++ {
			spec, _ := props.SpecAt(seed, i, props.GenOptions{})
			c, err := spec.Build()
			if err != nil {
				t.Fatal(err)
			}
			if c.EP.WorldSize() <= 1 || c.NonFinite || c.Config.Elements() > 1<<20 {
				continue
			}
			name := fmt.Sprintf("seed=%d/case=%d", seed, i)
			u, ranks, err := props.SplitCases(c)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			wu, wranks, err := splitCasesBefore(c)
			if err != nil {
				t.Fatalf("%s: before: %v", name, err)
			}
			if d := sameCase(u, wu); d != "" {
				t.Fatalf("%s: the unsplit layer's %s differs", name, d)
			}
			if len(ranks) != len(wranks) {
				t.Fatalf("%s: %d ranks, want %d", name, len(ranks), len(wranks))
			}
			for r := range ranks {
				if d := sameCase(ranks[r], wranks[r]); d != "" {
					t.Fatalf("%s: rank %d's %s differs", name, r, d)
				}
			}
			for r, cc := range append([]*moe.Case{u}, ranks...) {
				if err := cc.Validate(moe.Limits{}); err != nil {
					t.Fatalf("%s: case %d (0: unsplit) invalid: %v", name, r, err)
				}
			}
			if c.Global != nil {
				global++
			}
			n++
		}
	}
	if n < 50 || global == 0 || global == n {
		t.Fatalf("%d EP cases (%d with a global routing): too few to compare", n, global)
	}
	t.Logf("%d EP cases compared (%d with a global routing)", n, global)
}

// TestSplitCasesRefusesInvalid: SplitCases refuses a case whose values a rank could not
// hold (non-finite, even with NonFinite: the ranks do not allow it; not a dtype value) and a
// world of one rank, with an error naming the problem.
func TestSplitCasesRefusesInvalid(t *testing.T) {
	spec, err := props.ParseSpec("T=6 H=4 I=4 E=2 K=2 world=2 rank=1 dtype=bf16 routing=uniform seed=5")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *moe.Case)
		want string
	}{
		{"inf-nonfinite", func(c *moe.Case) { c.NonFinite = true; c.X[2] = math.Inf(1) }, "non-finite data needs NonFinite"},
		{"nan", func(c *moe.Case) { c.W2[0] = math.NaN() }, "W2 (down_proj)[0]"},
		{"not-dtype", func(c *moe.Case) { c.DY[1] = 0.1 }, "is not a bf16 value"},
		{"world-1", func(c *moe.Case) { c.EP = moe.EP{} }, "world size 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := spec.Build()
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(c)
			_, _, err = props.SplitCases(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
