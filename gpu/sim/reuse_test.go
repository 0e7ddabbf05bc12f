package sim

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// TestReuseSameAsWithout: a Backend that keeps its converted inputs between Runs (loaded) and
// takes back stage buffers (Recycle) gives, run after run, what one without either gives —
// outputs and stages bitwise, under every poison policy (Stale: what the previous run left,
// the same sequence of Runs on both) — also where a case's values change in place between Runs
// (the kept inputs are compared, not trusted).
func TestReuseSameAsWithout(t *testing.T) {
	type step struct {
		name   string
		mutate func(c *moe.Case)
	}
	steps := []step{
		{"same-case", func(*moe.Case) {}},
		{"x-changed-in-place", func(c *moe.Case) { c.X[0] = -c.X[0] + 1 }},
		{"dy-changed-in-place", func(c *moe.Case) { c.DY[len(c.DY)-1] *= 2 }},
		{"w1-changed-in-place", func(c *moe.Case) { c.W1[1] = -c.W1[1] + 0.5 }},
		{"w2-changed-in-place", func(c *moe.Case) { c.W2[0] += 1 }},
		{"bias-changed-in-place", func(c *moe.Case) {
			if c.Bias {
				c.B1[0] += 1
				c.B2[len(c.B2)-1] -= 1
			}
		}},
		{"nan-allowed", func(c *moe.Case) { c.NonFinite = true; c.X[0] = math.NaN() }},
		{"nan-refused", func(c *moe.Case) { c.NonFinite = false }},
		{"nan-removed", func(c *moe.Case) { c.X[0] = 1 }},
	}
	for _, cfg := range []moe.Config{
		{T: 9, H: 8, I: 5, E: 3, K: 2, DType: moe.BF16, Layout: moe.Transposed, Bias: true},
		{T: 7, H: 6, I: 4, E: 2, K: 3, DType: moe.FP16},
		{T: 5, H: 3, I: 7, E: 4, K: 2, DType: moe.FP32, Bias: true, EP: moe.EP{World: 2, Rank: 1}},
	} {
		for _, p := range gpu.Poisons() {
			t.Run(cfg.String()+"/poison="+p.String(), func(t *testing.T) {
				c := makeCase(t, cfg, routeRandom, moe.Normal, 7)
				kept, twin := New(Options{}), New(Options{})
				twin.noReuse = true // converts every Run, allocates new stage buffers
				for i, s := range steps {
					s.mutate(c)
					opts := gpu.RunOptions{Poison: p, PoisonSeed: uint64(i), Stages: true}
					got, gerr := kept.Run(t.Context(), c, opts)
					want, werr := twin.Run(t.Context(), c, opts)
					if (gerr == nil) != (werr == nil) {
						t.Fatalf("%s: error %v, without reuse %v", s.name, gerr, werr)
					}
					if gerr != nil {
						continue
					}
					if d := bitDiff(got, want); d != "" {
						t.Fatalf("%s: %s", s.name, d)
					}
					if d := stageDiff(got.Stages, want.Stages); d != "" {
						t.Fatalf("%s: %s", s.name, d)
					}
					kept.Recycle(got)
					if got.Stages != nil {
						t.Fatalf("%s: Recycle left the stages on the Result", s.name)
					}
					// a Run without stages in between: it takes the recycled buffers
					if i%2 == 1 {
						opts.Stages = false
						a, _ := kept.Run(t.Context(), c, opts)
						b, _ := twin.Run(t.Context(), c, opts)
						if d := bitDiff(a, b); d != "" {
							t.Fatalf("%s, no stages: %s", s.name, d)
						}
					}
				}
			})
		}
	}
}
