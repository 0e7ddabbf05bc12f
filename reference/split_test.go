package reference_test

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/casetest"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// splitCases builds an unsplit layer (E·W experts) and its W rank cases (E experts each), as
// props.SplitCases does: one global routing, the unsplit weights sliced per rank.
func splitCases(t testing.TB, cfg moe.Config, W int, mode moe.DataMode, seed uint64) (*moe.Case, []*moe.Case) {
	t.Helper()
	return casetest.Split(t, cfg, W, seed, seed*31+7, mode, nil)
}

// sameResult reports the first tensor in which got differs from want in any bit, or "";
// without wantWG the weight gradients must be absent from got.
func sameResult(got, want *reference.Result, wantWG bool) string {
	g, w := outputs(got), outputs(want)
	for _, name := range []string{"Y", "DX", "DRW", "DB1", "DB2", "DW1", "DW2"} {
		if !wantWG && (name == "DW1" || name == "DW2") {
			if g[name] != nil {
				return name + " (computed, not asked for)"
			}
			continue
		}
		if len(g[name]) != len(w[name]) || (g[name] == nil) != (w[name] == nil) || !bitwiseEqual(g[name], w[name]) {
			return name
		}
	}
	if !slices.Equal(got.Plan.Perm, want.Plan.Perm) || got.Plan.Rows != want.Plan.Rows {
		return "Plan"
	}
	return ""
}

// sameInputs reports whether two cases have the same rank and the same bits in every input
// (tensors and routing weights).
func sameInputs(a, b *moe.Case) bool {
	if a.EP != b.EP || !slices.Equal(a.Routing.IDs, b.Routing.IDs) {
		return false
	}
	for _, p := range [][2][]float64{{a.X, b.X}, {a.DY, b.DY}, {a.W1, b.W1}, {a.W2, b.W2}, {a.B1, b.B1}, {a.B2, b.B2},
		{a.Routing.Weights, b.Routing.Weights}} {
		if !bitwiseEqual(p[0], p[1]) {
			return false
		}
	}
	return true
}

// TestRunSplitSameAsRun: RunSplit's results — the unsplit layer's, its magnitude pass and
// each rank's, the ranks made from the unsplit computation — are bitwise Run's and
// Magnitude's of each case on its own, over dtypes, activations, layouts, biases, data modes
// (non-finite inputs included), world sizes, with and without the weight gradients (Run's
// own NoWeightGrads too); and a rank case that differs from
// its rank of the split in any input its rows read (then run on its own) still gets its own
// Run's result — with the reuse condition dropped it would get the unsplit layer's rows.
func TestRunSplitSameAsRun(t *testing.T) {
	changes := []struct {
		name   string
		change func(c *moe.Case)
	}{
		{"none", func(*moe.Case) {}},
		{"x", func(c *moe.Case) { c.X[len(c.X)/2] = c.DType.Round(c.X[len(c.X)/2] + 1) }},
		{"dy", func(c *moe.Case) { c.DY[0] = c.DType.Round(-c.DY[0] - 1) }},
		{"w1", func(c *moe.Case) {
			for i := range c.W1 {
				c.W1[i] = c.DType.Round(c.W1[i] + 0.5)
			}
		}},
		{"w2", func(c *moe.Case) {
			for i := range c.W2 {
				c.W2[i] = c.DType.Round(c.W2[i] - 0.5)
			}
		}},
		{"b1", func(c *moe.Case) {
			for i := range c.B1 {
				c.B1[i] = c.DType.Round(c.B1[i] + 1)
			}
		}},
		{"b2", func(c *moe.Case) {
			for i := range c.B2 {
				c.B2[i] = c.DType.Round(c.B2[i] + 1)
			}
		}},
		{"routing-weight", func(c *moe.Case) {
			for s, id := range c.Routing.IDs {
				if id != int32(c.E) {
					c.Routing.Weights[s] = c.DType.Round(c.Routing.Weights[s] / 3)
				}
			}
		}},
		{"rank", func(c *moe.Case) { c.EP.Rank = (c.EP.Rank + 1) % c.EP.World }},
	}
	n, own := 0, 0
	for seed := uint64(1); seed <= 24; seed++ {
		cfg, W, mode := casetest.SplitShape(seed)
		u, ranks := splitCases(t, cfg, W, mode, seed)
		if seed%4 == 1 { // non-finite inputs: the IEEE GEMMs
			for _, c := range append([]*moe.Case{u}, ranks...) {
				c.NonFinite = true
				c.DY[0], c.X[len(c.X)-1] = math.NaN(), math.Inf(1)
			}
		}
		ch := changes[seed%uint64(len(changes))]
		split := make([]bool, W) // whether each rank case is still its rank of the split
		for r := range split {
			split[r] = true
		}
		if ch.name != "none" {
			c := ranks[int(seed)%W].Clone()
			ch.change(c)
			if err := c.Validate(moe.Limits{}); err != nil {
				t.Fatalf("seed %d: change %s: %v", seed, ch.name, err)
			}
			split[int(seed)%W] = sameInputs(c, ranks[int(seed)%W])
			ranks[int(seed)%W] = c
		}
		if seed%5 == 0 { // a rank twice: both get its result
			ranks = append(ranks, ranks[0].Clone())
			split = append(split, split[0])
		}
		for _, noWG := range []bool{false, true} {
			name := fmt.Sprintf("seed=%d/%s/W=%d/change=%s/no-wg=%v", seed, cfg, W, ch.name, noWG)
			opts := reference.Options{NoWeightGrads: noWG}
			got, err := reference.RunSplit(u, ranks, opts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want, err := reference.Run(u, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := sameResult(got.Whole, want, !noWG); d != "" {
				t.Fatalf("%s: unsplit: %s differs from Run's", name, d)
			}
			if own, err := reference.Run(u, opts); err != nil {
				t.Fatal(err)
			} else if d := sameResult(own, want, !noWG); d != "" { // Run's NoWeightGrads itself
				t.Fatalf("%s: Run under the options: %s differs from Run's", name, d)
			}
			wantMag, err := reference.Magnitude(u, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := sameResult(got.Magnitude, wantMag, !noWG); d != "" {
				t.Fatalf("%s: magnitude: %s differs from Magnitude's", name, d)
			}
			if len(got.Ranks) != len(ranks) {
				t.Fatalf("%s: %d rank results for %d cases", name, len(got.Ranks), len(ranks))
			}
			for k, rc := range ranks {
				want, err := reference.Run(rc, reference.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if d := sameResult(got.Ranks[k], want, !opts.NoWeightGrads); d != "" {
					t.Fatalf("%s: rank case %d: %s differs from Run's", name, k, d)
				}
				if got.Split[k] != split[k] {
					t.Fatalf("%s: rank case %d: Split %v", name, k, got.Split[k])
				}
				n++
			}
		}
		if ch.name != "none" {
			own++
		}
	}
	if own == 0 {
		t.Fatal("no changed rank case: the reuse condition is not exercised")
	}
	t.Logf("%d rank results compared (%d splits with a changed rank case)", n, own)
}

// TestRunSplitRefusesInvalid: an invalid unsplit or rank case is an error naming it, as Run's;
// so is asking for stages.
func TestRunSplitRefusesInvalid(t *testing.T) {
	cfg := moe.Config{T: 4, H: 3, I: 2, E: 2, K: 2, DType: moe.BF16}
	u, ranks := splitCases(t, cfg, 2, moe.Normal, 3)
	if _, err := reference.RunSplit(u, ranks, reference.Options{Stages: true}); err == nil || !strings.Contains(err.Error(), "no stages") {
		t.Fatalf("stages: error %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(u *moe.Case, ranks []*moe.Case)
		want   string
	}{
		{"unsplit-nan", func(u *moe.Case, _ []*moe.Case) { u.X[0] = math.NaN() }, "reference: moe: X (hidden)[0]"},
		{"rank-value", func(_ *moe.Case, ranks []*moe.Case) { ranks[1].W1[0] = 0.1 }, "reference: rank case 1: moe: W1 (gate_up_proj)[0]"},
		{"rank-length", func(_ *moe.Case, ranks []*moe.Case) { ranks[0].DY = ranks[0].DY[1:] }, "reference: rank case 0: moe: dY has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ranks := splitCases(t, cfg, 2, moe.Normal, 3)
			tc.change(u, ranks)
			_, err := reference.RunSplit(u, ranks, reference.Options{})
			if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRunSplit measures the references of an expert-parallel split (what ep-split-sum
// reads: the unsplit layer's Run and Magnitude and each rank's Run, without the weight
// gradients where they are compared bitwise) in one pass (path=runsplit) against each case
// run on its own (path=separate), in splits per second.
func BenchmarkRunSplit(b *testing.B) {
	for _, s := range []struct {
		T, H, I, E, K, W int
	}{{24, 32, 24, 2, 2, 4}, {64, 64, 48, 2, 4, 2}, {128, 128, 96, 4, 2, 8}} {
		cfg := moe.Config{T: s.T, H: s.H, I: s.I, E: s.E, K: s.K, DType: moe.BF16}
		u, ranks := splitCases(b, cfg, s.W, moe.Normal, 3)
		for _, noWG := range []bool{false, true} {
			opts := reference.Options{NoWeightGrads: noWG}
			name := fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d/W=%d/no-wg=%v", s.T, s.H, s.I, s.E, s.K, s.W, noWG)
			b.Run(name+"/path=runsplit", func(b *testing.B) {
				for b.Loop() {
					if _, err := reference.RunSplit(u, ranks, opts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "splits/s")
			})
			b.Run(name+"/path=separate", func(b *testing.B) {
				for b.Loop() {
					if _, err := reference.Run(u, reference.Options{}); err != nil {
						b.Fatal(err)
					}
					if _, err := reference.Magnitude(u, reference.Options{}); err != nil {
						b.Fatal(err)
					}
					for _, rc := range ranks {
						if _, err := reference.Run(rc, reference.Options{}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "splits/s")
			})
		}
	}
}
