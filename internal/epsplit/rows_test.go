package epsplit_test

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/casetest"
	"math"
	"testing"

	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/moe"
)

// splitOf builds an unsplit layer (E·W experts) and its W rank cases (E experts each) over
// one global routing, the unsplit weights sliced per rank (as props.SplitCases does).
func splitOf(t *testing.T, cfg moe.Config, W int, seed uint64) (*moe.Case, []*moe.Case) {
	t.Helper()
	return casetest.Split(t, cfg, W, seed, seed, moe.Normal, nil)
}

// TestValidateRank: ValidateRank gives Validate's verdict — nil, or the same error — for the
// ranks of a split and for rank cases changed in every way Validate refuses (values that are
// not the unsplit layer's, so checked in full: with the Rows condition dropped they
// would pass), and in ways it accepts that break the split (then Rows does not hold);
// Rows holds exactly for the unchanged ranks.
func TestValidateRank(t *testing.T) {
	type change struct {
		name  string
		edit  func(c *moe.Case)
		split bool // still a rank of the split
	}
	changes := []change{
		{"none", func(*moe.Case) {}, true},
		{"x-nan", func(c *moe.Case) { c.X[1] = math.NaN() }, false},
		{"x-not-dtype", func(c *moe.Case) { c.X[0] = 0.1 }, false},
		{"dy-inf", func(c *moe.Case) { c.DY[len(c.DY)-1] = math.Inf(-1) }, false},
		{"w1-not-dtype", func(c *moe.Case) { c.W1[len(c.W1)-1] = 1 + 0x1p-30 }, false},
		{"w2-nan", func(c *moe.Case) { c.W2[0] = math.NaN() }, false},
		{"w2-short", func(c *moe.Case) { c.W2 = c.W2[1:] }, false},
		{"b1-not-dtype", func(c *moe.Case) {
			if c.Bias {
				c.B1[0] = 0.3
			} else {
				c.B1 = []float64{0}
			}
		}, false},
		{"b2-given", func(c *moe.Case) {
			if c.Bias {
				c.B2 = nil
			} else {
				c.B2 = make([]float64, c.LenB2())
			}
		}, false},
		{"routing-id", func(c *moe.Case) { c.Routing.IDs[0] = int32(c.E + 1) }, false},
		{"routing-weight", func(c *moe.Case) { c.Routing.Weights[0] = 0.1 }, false},
		{"x-other-value", func(c *moe.Case) { c.X[0] = c.DType.Round(c.X[0] + 1) }, false},
		{"nonfinite-flag", func(c *moe.Case) { c.NonFinite = true }, false},
		{"config-limit", func(c *moe.Case) { c.T = 1 << 30 }, false},
	}
	n := 0
	for _, bias := range []bool{false, true} {
		for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
			cfg := moe.Config{T: 5, H: 4, I: 3, E: 2, K: 2, DType: d, Bias: bias}
			u, ranks := splitOf(t, cfg, 3, uint64(n+1))
			if err := u.Validate(moe.Limits{}); err != nil {
				t.Fatal(err)
			}
			up, err := u.Plan()
			if err != nil {
				t.Fatal(err)
			}
			for r, rank := range ranks {
				for _, ch := range changes {
					name := fmt.Sprintf("bias=%v/%s/rank=%d/change=%s", bias, d, r, ch.name)
					c := rank.Clone()
					ch.edit(c)
					want := c.Validate(moe.Limits{})
					p, split, got := epsplit.ValidateRank(u, up, c, moe.Limits{})
					if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
						t.Fatalf("%s: error %v, want Validate's %v", name, got, want)
					}
					if got == nil && split != ch.split {
						t.Fatalf("%s: Rows %v, want %v", name, split, ch.split)
					}
					if got == nil && p == nil {
						t.Fatalf("%s: no plan", name)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d rank cases", n)
}
