package worker

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// A lane encodes a case once for its runs in a row, and encodes it again whenever it is
// another case or the same case changed in place (any value's bits, ids, global routing,
// flags): the worker (fakeBackend: Y = X, DW1 = W1, DRW = the routing weights past slot 0)
// always sees the case as it is at the run.
func TestRequestCacheSeesChanges(t *testing.T) {
	b := helper(t, time.Minute)
	cl := b.(*client)
	c := testCase(t, moe.BF16, true, true)
	c.NonFinite = true
	run := func(name string, cs *moe.Case, wantEncodes int) *gpu.Result {
		t.Helper()
		r, err := b.Run(context.Background(), cs, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cl.encodes != wantEncodes {
			t.Fatalf("%s: %d encodes, want %d", name, cl.encodes, wantEncodes)
		}
		if !bitsEqual(r.Y, f32s(cs.X)) || !bitsEqual(r.DW1, f32s(cs.W1)) || !bitsEqual(r.DRW[1:], f32s(cs.Routing.Weights[1:])) {
			t.Fatalf("%s: the worker ran another case than the one given", name)
		}
		return r
	}
	run("first", c, 1)
	run("again", c, 1)
	run("third", c, 1)
	n := 1
	for _, ch := range []struct {
		name   string
		change func(c *moe.Case)
	}{
		{"x value", func(c *moe.Case) { c.X[0] = -c.X[0] * 2 }},
		{"x sign of zero", func(c *moe.Case) { c.X[1] = 0 }},
		{"x negative zero", func(c *moe.Case) { c.X[1] = math.Copysign(0, -1) }},
		{"x NaN", func(c *moe.Case) { c.X[2] = math.NaN() }},
		{"x NaN sign", func(c *moe.Case) { c.X[2] = -math.NaN() }},
		{"w1 last", func(c *moe.Case) { c.W1[len(c.W1)-1] = 0.5 }},
		{"b2", func(c *moe.Case) { c.B2[0] = 0.25 }},
		{"dy", func(c *moe.Case) { c.DY[3] = 1 }},
		{"routing weight", func(c *moe.Case) {
			for s, id := range c.Routing.IDs {
				if s > 0 && id != int32(c.E) {
					c.Routing.Weights[s] = 0.125
					c.Global.Weights[s] = 0.125
					return
				}
			}
		}},
		{"routing swap", func(c *moe.Case) {
			r, g := c.Routing, c.Global
			for s := 1; s < len(r.IDs); s++ {
				if r.IDs[s] != r.IDs[0] || r.Weights[s] != r.Weights[0] {
					r.IDs[0], r.IDs[s] = r.IDs[s], r.IDs[0]
					r.Weights[0], r.Weights[s] = r.Weights[s], r.Weights[0]
					g.IDs[0], g.IDs[s] = g.IDs[s], g.IDs[0]
					g.Weights[0], g.Weights[s] = g.Weights[s], g.Weights[0]
					return
				}
			}
		}},
		{"keep sentinel weights", func(c *moe.Case) {
			c.Global.Options.KeepSentinelWeights = true
			for s := range c.Global.IDs {
				if c.Routing.IDs[s] == int32(c.E) {
					c.Global.Weights[s] = 0.5
					c.Routing.Weights[s] = 0.5
				}
			}
		}},
		{"flag", func(c *moe.Case) { c.NonFinite = true; c.X[4] = math.Inf(1) }},
	} {
		ch.change(c)
		n++
		run(ch.name, c, n)
		run(ch.name+" again", c, n)
	}
	d := c.Clone()
	run("a copy", d, n+1)
	run("back to the original", c, n+2)
}
